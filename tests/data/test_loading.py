"""load_raw_datasets: every source ends as "train" / "validation" splits with a "text" column."""

import json

import pytest
from datasets import Dataset, DatasetDict, IterableDatasetDict

from hf_textgen.data import DataArguments, bundled_corpus_files, load_raw_datasets, loading
from hf_textgen.data.documents import iter_documents
from hf_textgen.errors import UserError

DOCUMENTS = [f"Document number {index}.\nIt has two lines, and a comma." for index in range(40)]


def _texts(dataset) -> list[str]:
    return [row["text"] for row in dataset]


def _write_text(path, documents=DOCUMENTS):
    path.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    return str(path)


def test_bundled_corpus_files_exist():
    files = bundled_corpus_files()
    assert set(files) == {"train", "validation"}
    with open(files["train"], encoding="utf-8") as handle:
        assert handle.readline().strip() == "HAMLET, PRINCE OF DENMARK"


def test_bundled_corpus_by_default():
    readings = {}
    raw = load_raw_datasets(DataArguments(), readings=readings)
    assert {split: reading.read_by for split, reading in readings.items()} == {
        "train": ("paragraph",),
        "validation": ("paragraph",),
    }
    assert isinstance(raw, DatasetDict)
    assert set(raw) == {"train", "validation"}
    assert raw["train"].column_names == ["text"]
    # Paragraphs: a speech keeps its inner line breaks, blank lines separate documents.
    assert raw["validation"][0]["text"] == "MUCH ADO ABOUT NOTHING"
    assert all("\n\n" not in text for text in raw["train"][:500]["text"])
    assert any("\n" in text for text in raw["train"][:500]["text"])


def test_text_files_split_deterministically(tmp_path):
    args = DataArguments(train_file=[_write_text(tmp_path / "a.txt")], validation_split_percentage=10)
    first = load_raw_datasets(args)
    second = load_raw_datasets(args)
    # The first 10% of documents are the validation set, the rest train; the same every time.
    assert _texts(first["validation"]) == DOCUMENTS[:4] == _texts(second["validation"])
    assert _texts(first["train"]) == DOCUMENTS[4:] == _texts(second["train"])


def test_sample_by_line_and_document(tmp_path):
    path = _write_text(tmp_path / "a.txt", DOCUMENTS[:3])
    lines = load_raw_datasets(DataArguments(train_file=[path], validation_file=path, sample_by="line"))
    # Every non-blank line is a document and keeps its line break (keep_linebreaks).
    assert _texts(lines["validation"]) == [line + "\n" for text in DOCUMENTS[:3] for line in text.split("\n")]
    whole = load_raw_datasets(DataArguments(train_file=[path], validation_file=path, sample_by="document"))
    assert _texts(whole["validation"]) == ["\n\n".join(DOCUMENTS[:3]) + "\n"]


def test_train_file_globs_and_validation_file(tmp_path):
    _write_text(tmp_path / "part1.txt", DOCUMENTS[:10])
    _write_text(tmp_path / "part2.txt", DOCUMENTS[10:20])
    validation = _write_text(tmp_path / "held_out.md", DOCUMENTS[20:22])
    raw = load_raw_datasets(DataArguments(train_file=[str(tmp_path / "part*.txt")], validation_file=validation))
    assert _texts(raw["train"]) == DOCUMENTS[:20]
    assert _texts(raw["validation"]) == DOCUMENTS[20:22]


def test_only_a_validation_file_trains_on_the_bundled_corpus(tmp_path):
    raw = load_raw_datasets(DataArguments(validation_file=_write_text(tmp_path / "v.txt", DOCUMENTS[:2])))
    assert _texts(raw["validation"]) == DOCUMENTS[:2]
    assert raw["train"][0]["text"] == "HAMLET, PRINCE OF DENMARK"


@pytest.mark.parametrize("extension", ["json", "jsonl", "csv", "parquet"])
def test_structured_files_with_text_column(tmp_path, extension):
    rows = [{"id": index, "content": text} for index, text in enumerate(DOCUMENTS)]
    path = tmp_path / f"data.{extension}"
    if extension == "json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif extension == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    else:
        dataset = Dataset.from_list(rows)
        dataset.to_csv(str(path), index=False) if extension == "csv" else dataset.to_parquet(str(path))
    # "content" is the only string column, so it is found without --text_column_name.
    readings = {}
    raw = load_raw_datasets(DataArguments(train_file=[str(path)], validation_split_percentage=5), readings=readings)
    assert readings == {}  # rows are documents as they stand: no plain text was cut
    assert "text" in raw["train"].column_names
    assert _texts(raw["validation"]) == DOCUMENTS[:2]
    assert _texts(raw["train"]) == DOCUMENTS[2:]


def test_text_column_name_and_ambiguous_columns(tmp_path):
    rows = [{"title": f"title {index}", "body": text} for index, text in enumerate(DOCUMENTS)]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    with pytest.raises(UserError, match="cannot tell which column.*--text_column_name"):
        load_raw_datasets(DataArguments(train_file=[str(path)]))
    raw = load_raw_datasets(DataArguments(train_file=[str(path)], text_column_name="body"))
    assert _texts(raw["train"]) == DOCUMENTS[2:]
    with pytest.raises(UserError, match="no column 'missing'"):
        load_raw_datasets(DataArguments(train_file=[str(path)], text_column_name="missing"))


def test_local_folder_with_split_files(tmp_path):
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write_text(folder / "train.txt", DOCUMENTS[:30])
    _write_text(folder / "validation.txt", DOCUMENTS[30:])
    raw = load_raw_datasets(DataArguments(dataset_name=str(folder)))
    assert _texts(raw["train"]) == DOCUMENTS[:30]
    assert _texts(raw["validation"]) == DOCUMENTS[30:]


def test_local_folder_by_relative_path(tmp_path, monkeypatch):
    # `--dataset_name corpus` from the folder above it, with the release's own file names.
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write_text(folder / "wiki.train.raw", DOCUMENTS[:30])
    _write_text(folder / "wiki.valid.raw", DOCUMENTS[30:])
    _write_text(folder / "wiki.test.raw", DOCUMENTS[35:])
    monkeypatch.chdir(tmp_path)
    raw = load_raw_datasets(DataArguments(dataset_name="corpus"), extra_splits=("test",))
    assert _texts(raw["train"]) == DOCUMENTS[:30]
    assert _texts(raw["validation"]) == DOCUMENTS[30:]
    assert _texts(raw["test"]) == DOCUMENTS[35:]


def test_a_changed_reader_is_not_served_from_the_cache(tmp_path, monkeypatch):
    path = _write_text(tmp_path / "corpus.txt")
    args = DataArguments(train_file=[path], validation_file=path)
    assert _texts(load_raw_datasets(args, cache_dir=str(tmp_path / "cache"))["train"]) == DOCUMENTS
    # Another version of the reader (here: one that upper-cases) with the same file and cache reads it again.
    monkeypatch.setattr(
        loading, "iter_documents", lambda lines, *args: (text.upper() for text in iter_documents(lines, *args))
    )
    monkeypatch.setattr(loading, "_READER_SIGNATURE", "another version")
    reread = load_raw_datasets(args, cache_dir=str(tmp_path / "cache"))
    assert _texts(reread["train"]) == [text.upper() for text in DOCUMENTS]


def test_local_folder_saved_with_save_to_disk(tmp_path):
    DatasetDict({"train": Dataset.from_dict({"text": DOCUMENTS})}).save_to_disk(str(tmp_path / "saved"))
    raw = load_raw_datasets(DataArguments(dataset_name=str(tmp_path / "saved")))
    assert _texts(raw["validation"]) == DOCUMENTS[:2]
    streamed = load_raw_datasets(DataArguments(dataset_name=str(tmp_path / "saved"), streaming=True))
    assert isinstance(streamed, IterableDatasetDict)
    assert _texts(streamed["validation"]) == [DOCUMENTS[0], DOCUMENTS[20]]  # rows i with i * 5 % 100 < 5


def test_streaming_gives_iterable_datasets(tmp_path):
    path = _write_text(tmp_path / "a.txt")
    raw = load_raw_datasets(DataArguments(train_file=[path], streaming=True, validation_split_percentage=10))
    assert isinstance(raw, IterableDatasetDict)
    # Without a length, one row in ten goes to validation, spread evenly from row 0: deterministic as well.
    assert _texts(raw["validation"]) == DOCUMENTS[::10]
    assert _texts(raw["train"]) == [text for index, text in enumerate(DOCUMENTS) if index % 10]
    bundled = load_raw_datasets(DataArguments(streaming=True))
    assert next(iter(bundled["validation"]))["text"] == "MUCH ADO ABOUT NOTHING"


def test_hub_dataset_offline_is_a_clear_error():
    args = DataArguments(dataset_name="Salesforce/wikitext", dataset_config_name="wikitext-103-raw-v1")
    with pytest.raises(UserError, match="Hub is unreachable.*--train_file"):
        load_raw_datasets(args)


def test_bad_files(tmp_path):
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    (tmp_path / "blank.txt").write_text("\n\n\n\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("Caf\xe9 au lait\n".encode("latin-1"))
    # The bad byte lies past the cheap 64 kB check: datasets' own reading reports it.
    (tmp_path / "late_latin1.txt").write_bytes(b"fine text\n" * 10_000 + "na\xefve\n".encode("latin-1"))
    (tmp_path / "data.xml").write_text("<x/>", encoding="utf-8")
    cases = {
        "missing.txt": "does not exist",
        "empty.txt": "is empty",
        "blank.txt": "holds no text",
        "latin1.txt": "not UTF-8",
        "late_latin1.txt": "not UTF-8",
        "data.xml": "cannot tell the format",
        "nothing*.txt": "matches no file",
    }
    for name, message in cases.items():
        with pytest.raises(UserError, match=message):
            load_raw_datasets(DataArguments(train_file=[str(tmp_path / name)], validation_split_percentage=10))
    with pytest.raises(UserError, match="is a folder"):
        load_raw_datasets(DataArguments(train_file=[str(tmp_path)]))


def test_data_arguments_validate_fields():
    with pytest.raises(ValueError, match="validation_split_percentage"):
        DataArguments(validation_split_percentage=0)
    with pytest.raises(ValueError, match="block_size"):
        DataArguments(block_size=0)
    with pytest.raises(ValueError, match="sample_by"):
        DataArguments(sample_by="sentence")
    with pytest.raises(ValueError, match="either dataset_name or train_file"):
        DataArguments(dataset_name="x", train_file=["y.txt"])
    assert DataArguments(train_file="one.txt").train_file == ["one.txt"]


def test_damaged_or_unreadable_compressed_files(tmp_path):
    import gzip

    not_gzip = tmp_path / "wiki.valid.raw.gz"
    not_gzip.write_text("plain text under a .gz name\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"wiki\.valid\.raw\.gz is not a readable gzip file"):
        load_raw_datasets(DataArguments(train_file=[str(not_gzip)]))
    # Cut off past the first MiB of text: found while the documents are read, not by the first looks.
    text = "".join(f"Paragraph {index} of a long file.\n\n" for index in range(40_000))
    truncated = tmp_path / "long.txt.gz"
    truncated.write_bytes(gzip.compress(text.encode())[:-2000])
    with pytest.raises(UserError, match=r"long\.txt\.gz is not a readable gzip file"):
        load_raw_datasets(DataArguments(train_file=[str(truncated)]))
    latin1 = tmp_path / "latin1.txt.gz"
    latin1.write_bytes(gzip.compress("café\n\nnaïve\n".encode("latin-1")))
    with pytest.raises(UserError, match=r"latin1\.txt\.gz is not UTF-8 text"):
        load_raw_datasets(DataArguments(train_file=[str(latin1)]))
    # .zst needs the zstandard package, which is optional: without it the message says how to get it.
    zst = tmp_path / "corpus.txt.zst"
    zst.write_bytes(b"\x28\xb5\x2f\xfd not really zstd")
    with pytest.raises(UserError, match=r"corpus\.txt\.zst"):
        load_raw_datasets(DataArguments(train_file=[str(zst)]))
