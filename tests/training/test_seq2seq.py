"""`hf-textgen finetune --task seq2seq`: data checks, tokenization, the finished folder, and learning a new task."""

import csv
import json
import random

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_textgen import cli
from hf_textgen.training.seq2seq import tokenize_pairs

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# A tiny model: the tests check the plumbing, not the quality (except the slow learning test).
TINY_OVERRIDES = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64"


def _reverse_pairs(count: int, seed: int, alphabet: str = "abcdefgh", lengths=(3, 6)) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(*lengths)))
        rows.append({"source": text, "target": text[::-1]})
    return rows


def _write_jsonl(path, rows) -> str:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def pairs_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pairs")
    _write_jsonl(folder / "train.jsonl", _reverse_pairs(48, seed=0))
    _write_jsonl(folder / "validation.jsonl", _reverse_pairs(6, seed=1))
    return folder


def _run(argv, capsys):
    status = cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.err


def _finetune_argv(output_dir, train_file, validation_file, *extra):
    return [
        "finetune",
        "--task",
        "seq2seq",
        "--train_file",
        str(train_file),
        "--validation_file",
        str(validation_file),
        "--output_dir",
        str(output_dir),
        "--per_device_train_batch_size",
        "8",
        "--per_device_eval_batch_size",
        "8",
        "--report_to",
        "none",
        "--save_strategy",
        "no",
        "--eval_strategy",
        "no",
        *extra,
    ]


# ----------------------------------------------------------------------------------------------------- errors
def _assert_clean_failure(argv, output_dir, capsys, expected):
    status, err = _run(argv, capsys)
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2, err
    assert len(error_lines) == 1, err
    assert expected in error_lines[0], error_lines[0]
    assert "Traceback" not in err
    assert not output_dir.exists()


def test_missing_target_column(tmp_path, pairs_dir, capsys):
    with open(tmp_path / "train.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerows([["source", "output"], ["abc", "cba"], ["de", "ed"], ["fgh", "hgf"]])
    argv = _finetune_argv(tmp_path / "out", tmp_path / "train.csv", tmp_path / "train.csv", "--model_type", "seq2seq")
    _assert_clean_failure(argv, tmp_path / "out", capsys, "no target column 'target'")


def test_missing_source_column_names_the_flag(tmp_path, pairs_dir, capsys):
    train = pairs_dir / "train.jsonl"
    argv = _finetune_argv(tmp_path / "out", train, train, "--source_column", "input", "--model_type", "seq2seq")
    _assert_clean_failure(argv, tmp_path / "out", capsys, "--source_column")


def test_empty_data_file(tmp_path, pairs_dir, capsys):
    (tmp_path / "empty.jsonl").write_text("")
    argv = _finetune_argv(tmp_path / "out", tmp_path / "empty.jsonl", pairs_dir / "validation.jsonl")
    _assert_clean_failure(argv, tmp_path / "out", capsys, "empty")


def test_plain_text_has_no_pairs(tmp_path, tiny_corpus_dir, capsys):
    text = f"{tiny_corpus_dir}/train.txt"
    argv = _finetune_argv(tmp_path / "out", text, text, "--model_type", "seq2seq", "--source_column", "text")
    _assert_clean_failure(argv, tmp_path / "out", capsys, "no target column")


def test_decoder_only_model_is_refused(tmp_path, pairs_dir, tiny_tokenizer_path, capsys):
    argv = _finetune_argv(
        tmp_path / "out",
        pairs_dir / "train.jsonl",
        pairs_dir / "validation.jsonl",
        "--model_type",
        "transformer",
        "--tokenizer_name",
        tiny_tokenizer_path,
    )
    _assert_clean_failure(argv, tmp_path / "out", capsys, "encoder-decoder")


# ------------------------------------------------------------------------------------------------ tokenization
def test_tokenize_pairs_appends_eos_and_truncates(tiny_tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    examples = {"source": ["To be, or not to be", "Ay"], "target": ["that is the question", "me"]}
    features = tokenize_pairs(examples, tokenizer, max_source_length=4, max_target_length=3)
    assert features["input_ids"][0] == tokenizer("To be, or not to be")["input_ids"][:4]
    assert features["input_ids"][1] == tokenizer("Ay")["input_ids"]  # exactly what inference feeds the encoder
    assert all(labels[-1] == tokenizer.eos_token_id for labels in features["labels"])
    assert features["labels"][0] == tokenizer("that is the question")["input_ids"][:2] + [tokenizer.eos_token_id]
    assert len(features["labels"][1]) <= 3


# -------------------------------------------------------------------------------------------------- end to end
def test_from_scratch_writes_a_complete_model_folder_then_continues(tmp_path, pairs_dir, capsys):
    output_dir = tmp_path / "model"
    argv = _finetune_argv(
        output_dir,
        pairs_dir / "train.jsonl",
        pairs_dir / "validation.jsonl",
        "--model_type",
        "seq2seq",
        "--config_overrides",
        TINY_OVERRIDES,
        "--tokenizer_type",
        "char",
        "--max_steps",
        "3",
        "--max_target_length",
        "8",
    )
    status, err = _run(argv, capsys)
    assert status == 0, err[-3000:]
    files = {path.name for path in output_dir.iterdir()}
    expected = {"model.safetensors", "config.json", "tokenizer.json", "generation_config.json", "eval_results.json"}
    assert expected <= files, files
    assert {"modeling_seq2seq.py", "configuration_seq2seq.py"} <= files  # remote code travels with the folder
    config = json.loads((output_dir / "config.json").read_text())
    assert config["model_type"] == "hf_textgen_seq2seq"
    assert config["auto_map"]["AutoModelForSeq2SeqLM"].endswith("Seq2SeqTransformerForConditionalGeneration")
    assert (config["encoder_layers"], config["decoder_layers"], config["hidden_size"]) == (1, 1, 32)
    generation = json.loads((output_dir / "generation_config.json").read_text())
    assert generation["do_sample"] is False and generation["max_new_tokens"] == 8
    assert "max_length" not in generation  # (next to max_new_tokens it would warn at every generate call)
    assert generation["decoder_start_token_id"] == config["decoder_start_token_id"] == config["bos_token_id"]
    results = json.loads((output_dir / "eval_results.json").read_text())
    assert 0.0 <= results["eval_exact_match"] <= 1.0
    assert 0.0 <= results["eval_bleu"] <= 100.0
    assert results["eval_samples"] == 6

    # The folder is a normal transformers model folder: Auto classes load it and it generates.
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    encoded = tokenizer(["abcd"], return_tensors="pt")
    generated = model.generate(**encoded)
    assert generated.shape[0] == 1 and generated.shape[1] <= 1 + 8

    # Fine-tuning continues from the saved folder (its tokenizer comes along).
    continued = tmp_path / "continued"
    argv = _finetune_argv(
        continued,
        pairs_dir / "train.jsonl",
        pairs_dir / "validation.jsonl",
        "--model_name_or_path",
        str(output_dir),
        "--max_steps",
        "2",
        "--do_eval",
        "false",
    )
    status, err = _run(argv, capsys)
    assert status == 0, err[-3000:]
    assert (continued / "model.safetensors").is_file()
    assert json.loads((continued / "train_results.json").read_text())["train_samples"] == 48


# ---------------------------------------------------------------------------------------------------- learning
@pytest.mark.slow
def test_learns_to_reverse_strings_from_the_cli(tmp_path, capsys):
    """A task the model has never seen, from the CLI alone: reverse letter strings (chance exact match ~0)."""
    train = _write_jsonl(tmp_path / "train.jsonl", _reverse_pairs(1000, seed=0))
    validation = _write_jsonl(tmp_path / "validation.jsonl", _reverse_pairs(64, seed=1))
    output_dir = tmp_path / "reverser"
    argv = _finetune_argv(
        output_dir,
        train,
        validation,
        "--model_type",
        "seq2seq",
        "--config_overrides",
        "hidden_size=128,num_hidden_layers=2,num_attention_heads=4,intermediate_size=512,dropout=0.0",
        "--tokenizer_type",
        "char",
        "--max_steps",
        "300",
        "--per_device_train_batch_size",
        "32",
        "--learning_rate",
        "1e-3",
        "--max_grad_norm",
        "1.0",
        "--logging_steps",
        "50",
        "--seed",
        "0",
    )
    status, err = _run(argv, capsys)
    assert status == 0, err[-3000:]
    results = json.loads((output_dir / "eval_results.json").read_text())
    assert results["eval_exact_match"] >= 0.6, results
    assert "eval_bleu" in results  # (word-level BLEU says little about one-word outputs: not asserted on)

    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    sources = ["abcdef", "hgfe", "cab"]
    encoded = tokenizer(sources, return_tensors="pt", padding=True)
    outputs = tokenizer.batch_decode(model.generate(**encoded), skip_special_tokens=True)
    assert sum(output == source[::-1] for output, source in zip(outputs, sources)) >= 2, outputs
