"""`hf-textgen train-tokenizer`: a saved, loadable tokenizer; every bad input is one `error:` line and no folder."""

import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_textgen.cli import main

SAMPLE = "To be, or not to be: that is the question.\n你好，世界 😀\n"


def _run(argv, capsys):
    status = main(["train-tokenizer", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_trains_on_train_files_and_saves_a_fast_tokenizer(tmp_path, tiny_corpus_dir, capsys):
    output = tmp_path / "tokenizer"
    status, out, err = _run(
        ["--train_file", os.path.join(tiny_corpus_dir, "*.txt"), "--vocab_size", "400", "--output_dir", str(output)],
        capsys,
    )
    assert status == 0, err
    first, *summary = out.splitlines()
    assert "bpe tokenizer with 400 tokens" in first and "chars/token" in first
    # Then what to run next: pretraining with this tokenizer on the same files.
    next_line = next(line for line in summary if line.startswith("next"))
    assert f"hf-textgen pretrain --tokenizer_name {output} --train_file" in next_line
    assert next_line.endswith("/*.txt' --output_dir out")
    tokenizer = AutoTokenizer.from_pretrained(str(output))
    assert isinstance(tokenizer, PreTrainedTokenizerFast)
    assert tokenizer.decode(tokenizer(SAMPLE)["input_ids"]) == SAMPLE
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")], "temporary folder left behind"


@pytest.mark.parametrize("tokenizer_type", ["char", "word"])
def test_char_and_word_types(tmp_path, tiny_corpus_dir, capsys, tokenizer_type):
    output = tmp_path / tokenizer_type
    train = os.path.join(tiny_corpus_dir, "train.txt")
    status, out, err = _run(
        ["--tokenizer_type", tokenizer_type, "--train_file", train, "--output_dir", str(output)], capsys
    )
    assert status == 0, err
    tokenizer = AutoTokenizer.from_pretrained(str(output))
    assert tokenizer.unk_token == "<unk>"
    if tokenizer_type == "char":
        assert len(tokenizer("Hamlet")["input_ids"]) == 6


def test_reads_json_through_text_column_name(tmp_path, capsys):
    data = tmp_path / "data.jsonl"
    data.write_text("".join(f'{{"id": "{i}", "body": "line {i} of some text"}}\n' for i in range(50)), "utf-8")
    output = tmp_path / "out"
    argv = ["--train_file", str(data), "--text_column_name", "body", "--vocab_size", "300"]
    status, out, err = _run([*argv, "--output_dir", str(output)], capsys)
    assert status == 0, err
    assert (output / "tokenizer.json").is_file()
    # The next command reads the same column.
    assert "--text_column_name body --output_dir out" in out


def test_next_command_reads_the_text_the_same_way(tmp_path, capsys):
    corpus = tmp_path / "wiki.train.raw"
    corpus.write_text(" \n = Title = \n \n A paragraph of text . \n \n" * 20, encoding="utf-8")
    output = tmp_path / "tokenizer"
    argv = ["--train_file", str(corpus), "--sample_by", "article", "--no_keep_linebreaks", "--streaming"]
    status, out, err = _run([*argv, "--vocab_size", "300", "--output_dir", str(output)], capsys)
    assert status == 0, err
    next_line = next(line for line in out.splitlines() if line.startswith("next"))
    # Documents cut the same way, streamed; a stream has no length, so pretrain needs --max_steps.
    flags = "--sample_by article --no_keep_linebreaks --streaming --max_steps STEPS"
    assert next_line.endswith(f"--train_file {corpus} {flags} --output_dir out")


def test_arguments_from_a_yaml_file(tmp_path, tiny_corpus_dir, capsys):
    config = tmp_path / "tokenizer.yaml"
    output = tmp_path / "from_yaml"
    config.write_text(
        f"tokenizer_type: bpe\nvocab_size: 320\ntrain_file:\n  - {tiny_corpus_dir}/train.txt\noutput_dir: {output}\n",
        encoding="utf-8",
    )
    status, out, err = _run([str(config)], capsys)
    assert status == 0, err
    assert len(AutoTokenizer.from_pretrained(str(output))) == 320
    config.write_text("vocab_sise: 320\n", encoding="utf-8")
    status, _, err = _run([str(config)], capsys)
    assert status == 2 and "vocab_sise" in err and err.count("\n") == 1


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n \n\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("r\xe9sum\xe9\n".encode("latin-1"))
    # Past the cheap 64 kB check: found while the trainer streams the file.
    (tmp_path / "late_latin1.txt").write_bytes(b"fine text\n" * 10_000 + "na\xefve\n".encode("latin-1"))
    # Past the first MiB that auto's reading looks at: found while the trainer streams the file.
    (tmp_path / "very_late_latin1.txt").write_bytes(b"fine text\n" * 120_000 + "na\xefve\n".encode("latin-1"))
    text = "".join(f"Paragraph {index} of a long file.\n\n" for index in range(40_000))
    (tmp_path / "cut.txt.gz").write_bytes(gzip.compress(text.encode())[:-2000])
    good = tmp_path / "good.txt"
    good.write_text("some text\n", encoding="utf-8")
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("keep me", encoding="utf-8")
    return {
        "missing": (["--train_file", str(tmp_path / "missing.txt")], "does not exist"),
        "empty": (["--train_file", str(tmp_path / "empty.txt")], "is empty"),
        "blank": (["--train_file", str(tmp_path / "blank.txt")], "holds no text"),
        "not utf-8": (["--train_file", str(tmp_path / "latin1.txt")], "not UTF-8"),
        "not utf-8 late": (["--train_file", str(tmp_path / "late_latin1.txt"), "--vocab_size", "300"], "not UTF-8"),
        "not utf-8 late, streamed": (
            ["--train_file", str(tmp_path / "very_late_latin1.txt"), "--vocab_size", "300", "--streaming"],
            "very_late_latin1.txt is not UTF-8 text (bad byte at offset 1200002)",
        ),
        "cut-off gzip, streamed": (
            ["--train_file", str(tmp_path / "cut.txt.gz"), "--vocab_size", "300", "--streaming"],
            "cut.txt.gz is not a readable gzip file",
        ),
        "vocab too small": (["--train_file", str(good), "--vocab_size", "100"], "too small"),
        "occupied output": (["--train_file", str(good), "--output_dir", str(occupied)], "already holds files"),
        "hub offline": (["--dataset_name", "Salesforce/wikitext", "--dataset_config_name", "x"], "unreachable"),
        "both sources": (["--dataset_name", "x", "--train_file", str(good)], "either dataset_name or train_file"),
        "no output_dir": (["--train_file", str(good), "--output_dir", ""], "--output_dir is required"),
        "unknown type": (["--train_file", str(good), "--tokenizer_type", "sentencepiece"], "invalid choice"),
    }


def test_bad_inputs_are_one_line_errors_without_output(tmp_path, capsys):
    for name, (argv, message) in _bad_inputs(tmp_path).items():
        output = tmp_path / f"out-{name.replace(' ', '-')}"
        if "--output_dir" not in argv:
            argv = [*argv, "--output_dir", str(output)]
        status, out, err = _run(argv, capsys)
        assert status == 2, name
        assert err.startswith("error: ") and err.count("\n") == 1, (name, err)
        assert message in err, (name, err)
        assert not output.exists(), name
    assert os.listdir(tmp_path / "occupied") == ["notes.txt"]
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".")], "temporary folder left behind"


@pytest.mark.parametrize("tokenizer_type", ["word", "char"])
def test_a_corpus_too_small_to_learn_from(tmp_path, capsys, tokenizer_type):
    # Every word (character) seen once: the tokenizer would learn none, and read every text as <unk>.
    corpus = tmp_path / "tiny.txt"
    corpus.write_text("ab cd\n", encoding="utf-8")  # "ab" is held out for validation
    output = tmp_path / "tokenizer"
    argv = ["--train_file", str(corpus), "--tokenizer_type", tokenizer_type, "--output_dir", str(output)]
    status, _, err = _run(argv, capsys)
    unit = "word" if tokenizer_type == "word" else "character"
    assert status == 2 and err.count("error: ") == 1
    assert err.splitlines()[-1] == (
        f"error: the {tokenizer_type} tokenizer learned no {unit} seen at least 2 times; give more text or "
        "--min_frequency 1"
    )
    assert not output.exists()
    assert _run([*argv, "--min_frequency", "1"], capsys)[0] == 0


@pytest.mark.slow
def test_console_script_in_a_subprocess(tmp_path, tiny_corpus_dir):
    script = Path(sys.executable).with_name("hf-textgen")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "hf_textgen.cli"]
    output = tmp_path / "tokenizer"
    train = os.path.join(tiny_corpus_dir, "train.txt")
    argv = ["train-tokenizer", "--train_file", train, "--vocab_size", "300", "--output_dir", str(output)]
    result = subprocess.run([*command, *argv], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "saved to" in result.stdout
    assert AutoTokenizer.from_pretrained(str(output)).decode([]) == ""


@pytest.mark.parametrize(
    "extra", [[], ["--streaming"], ["--sample_by", "line", "--validation_split_percentage", "10"]]
)
def test_one_example_per_line_file(tmp_path, capsys, extra):
    # 500 short lines, no blank line: read per line (not as one document), so the split leaves plenty to train on.
    words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"]
    lines = [" ".join(words[(index + offset) % 10] for offset in range(4)) + f" {index}" for index in range(500)]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output = tmp_path / "word"
    argv = ["--train_file", str(corpus), "--tokenizer_type", "word", "--output_dir", str(output), *extra]
    status, out, err = _run(argv, capsys)
    assert status == 0, err
    tokenizer = AutoTokenizer.from_pretrained(str(output))
    assert tokenizer.convert_ids_to_tokens(tokenizer("the cat sat")["input_ids"]) == ["the", "cat", "sat"]
    assert "no validation text" not in out
