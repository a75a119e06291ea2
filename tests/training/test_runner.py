"""The shared runner: every task goes through the same checks and the same tokenizer path."""

import json

import pytest

from hf_textgen import cli
from hf_textgen.errors import UserError
from hf_textgen.training import runner


def _write_pairs(path, count=8):
    with open(path, "w", encoding="utf-8") as handle:
        for index in range(count):
            handle.write(json.dumps({"source": "abc"[: 1 + index % 3], "target": "cba"[: 1 + index % 3]}) + "\n")
    return str(path)


@pytest.fixture()
def pairs_file(tmp_path):
    return _write_pairs(tmp_path / "pairs.jsonl")


def _failure(argv, capsys):
    status = cli.main(argv)
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2, err
    assert len(error_lines) == 1, err
    assert "Traceback" not in err
    return error_lines[0]


@pytest.mark.parametrize("task", ["pretrain", "seq2seq"])
def test_every_task_trains_its_tokenizer_through_the_runner(
    task, tmp_path, tiny_corpus_dir, pairs_file, capsys, monkeypatch
):
    # The runner trains a tokenizer on the main process and broadcasts it; a task never trains one itself.
    calls = []

    def train_tokenizer_on(texts, model_args):
        calls.append(next(iter(texts)))
        raise UserError("tokenizer training reached")

    monkeypatch.setattr(runner, "train_tokenizer_on", train_tokenizer_on)
    if task == "pretrain":
        argv = ["pretrain", "--model_type", "rnn", "--train_file", f"{tiny_corpus_dir}/train.txt"]
    else:
        argv = ["finetune", "--task", "seq2seq", "--train_file", pairs_file, "--validation_file", pairs_file]
    argv += ["--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--report_to", "none"]
    assert "tokenizer training reached" in _failure(argv, capsys)
    assert len(calls) == 1 and isinstance(calls[0], str)
    assert not (tmp_path / "out").exists()


def test_seq2seq_checks_training_arguments_like_every_task(tmp_path, pairs_file, capsys):
    argv = ["finetune", "--task", "seq2seq", "--train_file", pairs_file, "--validation_file", pairs_file]
    argv += ["--output_dir", str(tmp_path / "out"), "--report_to", "no_such_integration"]
    assert "--report_to" in _failure(argv, capsys)
    assert not (tmp_path / "out").exists()


def test_limit_samples_keeps_the_first_rows():
    import datasets

    dataset = datasets.Dataset.from_dict({"x": list(range(10))})
    assert runner.limit_samples(dataset, 3)["x"] == [0, 1, 2]
    assert runner.limit_samples(dataset, 30)["x"] == list(range(10))
    assert runner.limit_samples(dataset, None) is dataset
