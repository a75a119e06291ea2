"""`load_pairs`: the (source, target) loader that seq2seq fine-tuning and evaluation share."""

import csv

import pytest

from hf_textgen.data import DataArguments
from hf_textgen.data.pairs import load_pairs
from hf_textgen.errors import UserError


def test_load_pairs_reads_csv_with_named_columns_and_drops_empty_rows(tmp_path):
    rows = [["id", "question", "answer"], ["1", "abc", "cba"], ["2", "", "x"], ["3", "de", "ed"], ["4", "fg", "gf"]]
    with open(tmp_path / "pairs.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    data_args = DataArguments(train_file=[str(tmp_path / "pairs.csv")], validation_split_percentage=34)
    pairs = load_pairs(data_args, source_column="question", target_column="answer")
    assert set(pairs) == {"train", "validation"}
    for split in pairs.values():
        assert split.column_names == ["source", "target"]
    found = list(zip(pairs["validation"]["source"], pairs["validation"]["target"]))
    found += list(zip(pairs["train"]["source"], pairs["train"]["target"]))
    assert sorted(found) == [("abc", "cba"), ("de", "ed"), ("fg", "gf")]  # the row without a source is dropped


def test_a_validation_file_alone_is_enough_for_evaluation(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"src": "ab", "tgt": "ba"}\n{"src": "cd", "tgt": "dc"}\n', encoding="utf-8")
    pairs = load_pairs(DataArguments(validation_file=str(path)), "src", "tgt", evaluation_only=True)
    assert list(zip(pairs["validation"]["source"], pairs["validation"]["target"])) == [("ab", "ba"), ("cd", "dc")]
    with pytest.raises(UserError, match="--train_file"):
        load_pairs(DataArguments(validation_file=str(path)), "src", "tgt")
    with pytest.raises(UserError, match="--validation_file data has no column 'question'"):
        load_pairs(DataArguments(validation_file=str(path)), "question", "tgt", evaluation_only=True)


def test_a_single_pair_cannot_be_split(tmp_path):
    # One row is not one document to cut in two: its target would be lost.
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"source": "ab", "target": "ba"}\n', encoding="utf-8")
    with pytest.raises(UserError, match="one row: too few to split off a validation set.*--validation_file"):
        load_pairs(DataArguments(train_file=[str(path)]))
