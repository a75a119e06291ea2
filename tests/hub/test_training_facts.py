"""The facts a run records for its card: languages, a prompt, the data files, the hyperparameters as set."""

import json
from pathlib import Path

import pytest

from hf_textgen.data import DataArguments, load_raw_datasets
from hf_textgen.hub.training_facts import (
    describe_training_data,
    detect_languages,
    prompt_from,
    recorded_text_reading,
    save_training_facts,
    text_reading_record,
)
from hf_textgen.training.arguments import TrainingArguments

CHINESE = (Path(__file__).resolve().parents[1] / "data" / "fixtures" / "chinese.txt").read_text(encoding="utf-8")
FRENCH = (
    "Il était une fois, dans un château près de la forêt, une reine qui s'appelait Hélène. Elle aimait les fêtes "
    "et les chansons, mais elle détestait l'hiver. Chaque été, elle organisait une grande fête où l'on mangeait "
    "des gâteaux et où les enfants couraient dans les jardins jusqu'à la nuit tombée."
)


def test_languages_are_identified_by_their_share_of_the_text(tiny_corpus_dir):
    english = Path(tiny_corpus_dir, "train.txt").read_text(encoding="utf-8")
    assert detect_languages([english]) == ["en"]
    assert detect_languages(CHINESE.split("\n\n")) == ["zh"]
    # A bilingual corpus lists both; numbers and code alone name no language.
    assert set(detect_languages([english[:3000], FRENCH * 5])) == {"en", "fr"}
    assert detect_languages(["x = 1 + 2", "3.14159 2.71828", "<br/>"]) == []


@pytest.mark.parametrize(
    ("texts", "prompt"),
    [
        (["\n\nHAMLET.\nTo be, or not to be, that is the question:"], "HAMLET."),
        (["The quick brown fox jumps over the lazy dog and runs far."], "The quick brown fox jumps over the lazy"),
        ([CHINESE], "今天早上天气很好，阳光照在窗台上，"),
        (["1 2 3", "---"], None),
    ],
)
def test_prompt_is_the_start_of_the_first_line_with_letters(texts, prompt):
    assert prompt_from(texts) == prompt


def test_describe_files_and_a_streamed_sample(tmp_path):
    train = tmp_path / "zh.txt"
    train.write_text(CHINESE, encoding="utf-8")
    data_args = DataArguments(train_file=[str(train)], streaming=True)
    raw = load_raw_datasets(data_args)
    facts = describe_training_data(data_args, raw["train"])
    assert facts["train_files"] == [{"name": "zh.txt", "bytes": train.stat().st_size}]
    assert facts["languages"] == ["zh"]
    assert facts["validation_split_percentage"] == 5
    assert "num_documents" not in facts  # a stream's length is unknown, and is not made up
    assert CHINESE.replace("\n", "").find(facts["prompt"]) >= 0


def test_recorded_arguments_are_as_set_and_hold_no_paths_or_tokens(tmp_path):
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"), learning_rate=1e-3, max_steps=300, hub_token="hf_secret", report_to="none"
    )
    save_training_facts(tmp_path, args)
    record = json.loads((tmp_path / "training_args.json").read_text())
    assert record["learning_rate"] == 1e-3 and record["max_steps"] == 300
    assert record["world_size"] == 1
    text = (tmp_path / "training_args.json").read_text()
    assert "hf_secret" not in text and str(tmp_path) not in text


def test_text_reading_is_recorded_and_read_back(tmp_path):
    train = tmp_path / "lines.txt"
    train.write_text("".join(f"example {index} of one per line\n" for index in range(20)), encoding="utf-8")
    data_args = DataArguments(train_file=[str(train)])
    readings = {}
    raw = load_raw_datasets(data_args, split_validation=False, readings=readings)
    reading = text_reading_record(readings["train"], eos_after_each_document=True)
    assert reading == {
        "sample_by": "auto",
        "read_by": "line",
        "eos_after_each_document": True,
        "keep_linebreaks": True,
    }
    args = TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none")
    (tmp_path / "model").mkdir()
    save_training_facts(tmp_path / "model", args, data_args, raw["train"], text_reading=reading)
    assert recorded_text_reading(tmp_path / "model") == reading
    # A Trainer checkpoint has no record of its own: its run's folder speaks for it.
    (tmp_path / "model" / "checkpoint-5").mkdir()
    assert recorded_text_reading(tmp_path / "model" / "checkpoint-5") == reading
    # No record: no folder, no file, a file without the entry, or one that is not JSON.
    assert recorded_text_reading(tmp_path / "missing") is None
    assert recorded_text_reading("someone/model-on-the-hub") is None
    (tmp_path / "rows").mkdir()
    save_training_facts(tmp_path / "rows", args, data_args, raw["train"])
    assert recorded_text_reading(tmp_path / "rows") is None
    (tmp_path / "rows" / "training_data.json").write_text("{not json", encoding="utf-8")
    assert recorded_text_reading(tmp_path / "rows") is None
