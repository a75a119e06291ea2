"""Model cards written by real training runs state the run's facts, on English and on Chinese data.

Each family and task trains a tiny model for a few steps through the CLI; its README.md must then name the data
file and its size, the language detected in it, the hyperparameters as set (not the scheduler's logged values),
every evaluation point, and a usage prompt taken from the training text.
"""

import json
import random
from pathlib import Path

import pytest
import torch
from huggingface_hub import metadata_load

from hf_textgen import cli

FIXTURES = Path(__file__).resolve().parents[1] / "data" / "fixtures"
TINY = {
    "transformer": "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,"
    "max_position_embeddings=128",
    "rnn": "hidden_size=32,num_hidden_layers=1",
    "seq2seq": "hidden_size=32,num_attention_heads=2,intermediate_size=64,encoder_layers=1,decoder_layers=1,"
    "max_position_embeddings=128",
}
# A learning rate the cosine schedule never logs exactly, so the card must have read what was set.
COMMON = ["--max_steps", "4", "--learning_rate", "2e-3", "--per_device_train_batch_size", "4"]
COMMON += ["--eval_strategy", "steps", "--eval_steps", "2", "--logging_steps", "1", "--save_strategy", "no"]
COMMON += ["--disable_tqdm", "true", "--report_to", "none"]
BLOCKS = ["--block_size", "32"]


@pytest.fixture(autouse=True)
def _one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sentences(language: str, tiny_corpus_dir: str) -> list[str]:
    if language == "zh":
        text = (FIXTURES / "chinese.txt").read_text(encoding="utf-8")
        return [part + "。" for part in text.replace("\n", "").split("。") if len(part) > 6]
    text = Path(tiny_corpus_dir, "train.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if len(line.strip()) > 12]


def _write(path: Path, rows: list[dict[str, str]]) -> str:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module", params=["en", "zh"])
def corpus(request, tmp_path_factory, tiny_corpus_dir):
    """Plain text and the three kinds of pairs, all in one language; the train files' first rows give the prompt."""
    language = request.param
    folder = tmp_path_factory.mktemp(f"corpus_{language}")
    sentences = _sentences(language, tiny_corpus_dir)
    (folder / "train.txt").write_text("\n\n".join(sentences[6:]) + "\n", encoding="utf-8")
    (folder / "validation.txt").write_text("\n\n".join(sentences[:6]) + "\n", encoding="utf-8")
    rng = random.Random(0)
    half = [len(sentence) // 2 for sentence in sentences]
    pairs = [{"prompt": s[:h], "completion": s[h:]} for s, h in zip(sentences, half)]
    labelled = [{"text": s, "label": rng.choice(["a", "b"])} for s in sentences]
    reversed_pairs = [{"source": s, "target": s[::-1]} for s in sentences]
    for name, rows in (("pairs", pairs), ("labelled", labelled), ("reversed", reversed_pairs)):
        _write(folder / f"{name}.train.jsonl", rows[6:])
        _write(folder / f"{name}.validation.jsonl", rows[:6])
    return language, folder


def _files(folder: Path, name: str) -> list[str]:
    if name == "text":
        return ["--train_file", str(folder / "train.txt"), "--validation_file", str(folder / "validation.txt")]
    train, validation = folder / f"{name}.train.jsonl", folder / f"{name}.validation.jsonl"
    return ["--train_file", str(train), "--validation_file", str(validation)]


# (case, command line without data and output, data files, the file's first row's column that gives the prompt)
CASES = {
    "rnn-pretrain": (["pretrain", "--model_type", "rnn", "--config_overrides", TINY["rnn"], *BLOCKS], "text", None),
    "transformer-pretrain": (
        ["pretrain", "--model_type", "transformer", "--config_overrides", TINY["transformer"], *BLOCKS],
        "text",
        None,
    ),
    "transformer-prompt_completion": (
        ["finetune", "--task", "prompt_completion", "--model_type", "transformer"]
        + ["--config_overrides", TINY["transformer"]],
        "pairs",
        "prompt",
    ),
    "rnn-classification": (
        ["finetune", "--task", "classification", "--model_type", "rnn", "--config_overrides", TINY["rnn"]],
        "labelled",
        "text",
    ),
    "seq2seq": (
        ["finetune", "--task", "seq2seq", "--model_type", "seq2seq", "--config_overrides", TINY["seq2seq"]],
        "reversed",
        "source",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_card_states_the_runs_facts(tmp_path, corpus, case, tiny_tokenizer_path):
    language, folder = corpus
    command, data, prompt_column = CASES[case]
    output_dir = tmp_path / case
    argv = [*command, *_files(folder, data), "--output_dir", str(output_dir), *COMMON]
    argv += ["--tokenizer_name", tiny_tokenizer_path]
    assert cli.main(argv) == 0

    readme = output_dir / "README.md"
    text = readme.read_text(encoding="utf-8")
    metadata = metadata_load(readme)
    assert metadata["language"] == [language]
    train_file = argv[argv.index("--train_file") + 1]
    size = Path(train_file).stat().st_size
    assert f"Training data: `{Path(train_file).name}` (" in text
    assert f"{size} bytes" in text or f"{size / 1024:.1f} kB" in text
    assert "| learning_rate | 0.002 |" in text
    assert "| max_steps | 4 |" in text and "num_train_epochs" not in text
    state = json.loads((output_dir / "trainer_state.json").read_text())
    eval_steps = sorted({entry["step"] for entry in state["log_history"] if "eval_loss" in entry})
    assert eval_steps == [2, 4]
    for step in eval_steps:
        assert any(line.startswith(f"| {step} | ") and not line.endswith("| - |") for line in text.splitlines())

    prompt = json.loads((output_dir / "training_data.json").read_text(encoding="utf-8"))["prompt"]
    if prompt_column is None:
        first_document = Path(train_file).read_text(encoding="utf-8").split("\n\n")[0]
    else:
        first_document = json.loads(Path(train_file).read_text(encoding="utf-8").splitlines()[0])[prompt_column]
    assert first_document.startswith(prompt) and len(prompt) >= 3
    assert json.dumps(prompt, ensure_ascii=False) + (")" if case == "rnn-classification" else ",") in text
    assert "To be, or not to be" not in text


def test_fine_tuned_card_names_its_base_model_and_its_own_figures(tmp_path, corpus, tiny_tokenizer_path):
    language, folder = corpus
    base = tmp_path / "base"
    argv = ["pretrain", "--model_type", "rnn", "--config_overrides", TINY["rnn"], *_files(folder, "text"), *BLOCKS]
    assert cli.main([*argv, "--output_dir", str(base), "--tokenizer_name", tiny_tokenizer_path, *COMMON]) == 0
    tuned = tmp_path / "tuned"
    argv = ["finetune", "--task", "causal_lm", "--model_name_or_path", str(base), *_files(folder, "text"), *BLOCKS]
    assert cli.main([*argv, "--output_dir", str(tuned), *COMMON[:2], "--learning_rate", "5e-4", *COMMON[4:]]) == 0
    text = (tuned / "README.md").read_text(encoding="utf-8")
    assert f"It was fine-tuned from `{base}`." in text
    assert "| learning_rate | 0.0005 |" in text
    own = json.loads((tuned / "all_results.json").read_text())
    assert f"| perplexity | validation | {own['perplexity']:.4g} |" in text
    assert metadata_load(tuned / "README.md")["language"] == [language]
