"""Corpora as users have them, end to end through the CLI: WikiText's own files, short streamed validation text."""

import json

from wikitext_layout import ARTICLES, wikitext_text

from hf_textgen import cli

TINY_TRANSFORMER = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64"


def _pretrain(tmp_path, tokenizer_path, *data_flags):
    return [
        "pretrain",
        "--output_dir",
        str(tmp_path / "out"),
        "--model_type",
        "transformer",
        "--config_overrides",
        TINY_TRANSFORMER,
        "--tokenizer_name",
        tokenizer_path,
        "--block_size",
        "32",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--eval_strategy",
        "no",
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
        *data_flags,
    ]


def test_pretrain_on_wikitext_raw_files(tmp_path, tiny_tokenizer_path, capsys):
    train = tmp_path / "wiki.train.raw"
    train.write_text(wikitext_text(ARTICLES * 4), encoding="utf-8")
    valid = tmp_path / "wiki.valid.raw"
    valid.write_text(wikitext_text(), encoding="utf-8")
    argv = _pretrain(tmp_path, tiny_tokenizer_path, "--train_file", str(train), "--validation_file", str(valid))
    assert cli.main(argv) == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    assert results["eval_samples"] >= 1 and results["perplexity"] > 1


def test_pretrain_on_one_wikitext_file_splits_validation_off(tmp_path, tiny_tokenizer_path, capsys):
    # A single file and no validation file: the split is made of packed blocks, so it cannot leave a side empty.
    train = tmp_path / "wiki.train.tokens"
    train.write_text(wikitext_text(), encoding="utf-8")
    argv = _pretrain(tmp_path, tiny_tokenizer_path, "--train_file", str(train), "--sample_by", "document")
    assert cli.main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "out" / "eval_results.json").read_text())["eval_samples"] == 1


def test_streaming_validation_shorter_than_a_block_fails_before_training(
    tmp_path, tiny_corpus_dir, tiny_tokenizer_path, capsys
):
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("A line shorter than one block.\n", encoding="utf-8")
    data = ["--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", str(tiny), "--streaming"]
    argv = _pretrain(tmp_path, tiny_tokenizer_path, *data)
    argv[argv.index("--eval_strategy") + 1] = "steps"
    status = cli.main(argv)
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2 and len(errors) == 1, err
    assert "validation text is shorter than one block of 32 tokens" in errors[0]
    assert "Traceback" not in err and "{'loss'" not in err  # no step was trained
    assert not (tmp_path / "out").exists()
