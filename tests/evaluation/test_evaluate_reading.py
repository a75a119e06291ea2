"""`hf-textgen evaluate` reads text the way the model's training text was read (`training_data.json`), by default.

A model pretrained on paragraphs (each followed by EOS) never saw a blank line: by default its evaluation text is
cut into paragraphs too, and only `--sample_by document` (or a folder with no record) scores each file whole, as
lm-evaluation-harness does.
"""

import json
import logging
import shutil
from pathlib import Path

import pytest

from hf_textgen.cli import main as cli_main


@pytest.fixture(scope="module")
def pretrained(tiny_corpus_dir, tiny_tokenizer_path, tmp_path_factory):
    """A tiny Transformer pretrained (a few steps) on a text file whose paragraphs are separated by blank lines."""
    output_dir = tmp_path_factory.mktemp("pretrained") / "model"
    argv = ["pretrain", "--output_dir", str(output_dir), "--model_type", "transformer"]
    argv += ["--config_overrides", "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64"]
    argv += ["--tokenizer_name", tiny_tokenizer_path, "--train_file", f"{tiny_corpus_dir}/train.txt"]
    argv += ["--validation_file", f"{tiny_corpus_dir}/validation.txt", "--block_size", "32", "--max_steps", "4"]
    argv += ["--per_device_train_batch_size", "4", "--eval_strategy", "no", "--disable_tqdm", "true"]
    assert cli_main(argv) == 0
    return output_dir


@pytest.fixture(scope="module")
def unrecorded(pretrained, tmp_path_factory):
    """The same model in a folder that does not record how its training text was read (an older folder)."""
    folder = tmp_path_factory.mktemp("unrecorded") / "model"
    shutil.copytree(pretrained, folder)
    (folder / "training_data.json").unlink()
    return folder


def _evaluate(model_dir, text_file, output_dir, *flags):
    argv = ["evaluate", "--model_name_or_path", str(model_dir), "--validation_file", str(text_file), *flags]
    assert cli_main([*argv, "--block_size", "32", "--output_dir", str(output_dir)]) == 0
    return json.loads((output_dir / "eval_results.json").read_text())


def _evaluate_and_log(model_dir, text_file, output_dir, caplog):
    """`_evaluate` with the default reading, and the one hf_textgen log line that names `text_file`."""
    with caplog.at_level(logging.INFO, logger="hf_textgen"):
        results = _evaluate(model_dir, text_file, output_dir)
    messages = [record.getMessage() for record in caplog.records if record.name.startswith("hf_textgen")]
    (line,) = [message for message in messages if Path(text_file).name in message]
    return results, line


def _same_score(first, second):
    return first["num_tokens"] == second["num_tokens"] and first["eval_loss"] == pytest.approx(
        second["eval_loss"], rel=1e-6
    )


def test_the_folder_records_how_its_training_text_was_read(pretrained):
    facts = json.loads((pretrained / "training_data.json").read_text())
    assert facts["text_reading"] == {"sample_by": "auto", "read_by": "paragraph", "eos_after_each_document": True}


def test_by_default_a_text_file_is_read_as_the_model_was_trained(pretrained, tiny_corpus_dir, tmp_path, caplog):
    text_file = f"{tiny_corpus_dir}/validation.txt"
    default, line = _evaluate_and_log(pretrained, text_file, tmp_path / "default", caplog)
    by_paragraph = _evaluate(pretrained, text_file, tmp_path / "paragraph", "--sample_by", "paragraph")
    by_document = _evaluate(pretrained, text_file, tmp_path / "document", "--sample_by", "document")

    assert _same_score(default, by_paragraph)
    # The whole file also scores its blank lines (the newlines between paragraphs) and more context: more tokens.
    assert default["num_tokens"] < by_document["num_tokens"]
    assert default["num_characters"] < by_document["num_characters"]
    assert default["data"] == {
        "validation_file": text_file,
        "sample_by": "auto",
        "read_by": "paragraph",
        "reading_chosen_by": "training_data.json",
    }
    # An explicit flag wins over the record.
    assert by_document["data"]["read_by"] == "document"
    assert by_document["data"]["reading_chosen_by"] == "--sample_by"
    # One line says which reading, why, and how to get lm-eval's; the loader's own line is not repeated.
    assert line.startswith("evaluating validation.txt by paragraph")
    assert "training_data.json" in line and "--sample_by document" in line


def test_a_file_of_one_example_per_line_is_read_per_line(pretrained, tiny_corpus_dir, tmp_path):
    # Trained by paragraph, evaluated on a file without blank lines: read as pretrain would read that file.
    with open(f"{tiny_corpus_dir}/validation.txt", encoding="utf-8") as handle:
        lines = [line for line in handle if line.strip()][:40]
    text_file = tmp_path / "lines.txt"
    text_file.write_text("".join(lines), encoding="utf-8")
    default = _evaluate(pretrained, text_file, tmp_path / "default")
    by_line = _evaluate(pretrained, text_file, tmp_path / "line", "--sample_by", "line")
    by_document = _evaluate(pretrained, text_file, tmp_path / "document", "--sample_by", "document")
    assert _same_score(default, by_line)
    assert default["data"]["read_by"] == "line"
    # The same tokens, but each line scored after its own EOS rather than in the context of the lines before it.
    assert default["num_tokens"] == by_document["num_tokens"]
    assert not _same_score(default, by_document)


def test_a_folder_without_the_record_keeps_whole_documents(unrecorded, pretrained, tiny_corpus_dir, tmp_path, caplog):
    text_file = f"{tiny_corpus_dir}/validation.txt"
    default, line = _evaluate_and_log(unrecorded, text_file, tmp_path / "default", caplog)
    by_document = _evaluate(pretrained, text_file, tmp_path / "document", "--sample_by", "document")
    by_paragraph = _evaluate(unrecorded, text_file, tmp_path / "paragraph", "--sample_by", "paragraph")
    assert _same_score(default, by_document)
    assert not _same_score(default, by_paragraph)
    assert default["data"]["read_by"] == "document"
    assert default["data"]["reading_chosen_by"] == "lm-evaluation-harness default"
    assert "lm-evaluation-harness" in line and "records no reading" in line and "--sample_by paragraph" in line


def test_lines_trained_without_their_line_breaks_are_scored_without_them(unrecorded, tiny_corpus_dir, tmp_path):
    # A folder whose model was trained one example per line with --no_keep_linebreaks (the record says so).
    folder = tmp_path / "model"
    shutil.copytree(unrecorded, folder)
    reading = {"sample_by": "line", "read_by": "line", "eos_after_each_document": True, "keep_linebreaks": False}
    (folder / "training_data.json").write_text(json.dumps({"text_reading": reading}), encoding="utf-8")
    text_file = f"{tiny_corpus_dir}/validation.txt"
    default = _evaluate(folder, text_file, tmp_path / "default")
    stripped = _evaluate(folder, text_file, tmp_path / "stripped", "--sample_by", "line", "--no_keep_linebreaks")
    kept = _evaluate(folder, text_file, tmp_path / "kept", "--sample_by", "line")
    assert _same_score(default, stripped)
    assert default["num_characters"] < kept["num_characters"]  # no newline scored after each line
