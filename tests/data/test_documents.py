"""Documents as people mean them: blank lines with spaces, WikiText's layout and articles, one example per line."""

import dataclasses
import logging
import re

import pytest
from datasets import Dataset, DatasetDict, IterableDatasetDict
from wikitext_layout import ARTICLES, document_level_pages, heading, wikitext_text

from hf_textgen.data import DataArguments, load_raw_datasets
from hf_textgen.data.documents import is_article_heading, iter_documents
from hf_textgen.errors import UserError


def _texts(dataset) -> list[str]:
    return [row["text"] for row in dataset]


def _write(path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


def _wikitext_paragraphs(articles=ARTICLES) -> list[str]:
    """What a reader expects from WikiText by paragraph: each heading, and each run of lines between blank ones."""
    expected = []
    for title, sections in articles:
        expected.append(heading(1, title).rstrip("\n"))
        for level, name, paragraphs in sections:
            if level is not None:
                expected.append(heading(level, name).rstrip("\n"))
            expected.append("\n".join(f" {paragraph} " for paragraph in paragraphs))
    return expected


def test_a_line_of_spaces_is_blank(tmp_path):
    path = _write(tmp_path / "a.txt", "First paragraph,\nstill the first.\n   \nSecond one.\n\t\nThird.\n")
    raw = load_raw_datasets(DataArguments(train_file=[path], validation_file=path))
    assert _texts(raw["validation"]) == ["First paragraph,\nstill the first.", "Second one.", "Third."]


@pytest.mark.parametrize("name", ["wiki.train.raw", "wiki.train.tokens", "corpus.rst", "README", "notes.markdown"])
def test_plain_text_extensions(tmp_path, name):
    path = _write(tmp_path / name, "One paragraph.\n\nAnother paragraph.\n")
    raw = load_raw_datasets(DataArguments(train_file=[path], validation_file=path))
    assert _texts(raw["train"]) == ["One paragraph.", "Another paragraph."]


def test_wikitext_files_by_paragraph_and_by_article(tmp_path):
    path = _write(tmp_path / "wiki.train.raw", wikitext_text())
    paragraphs = load_raw_datasets(DataArguments(train_file=[path], validation_file=path))
    texts = _texts(paragraphs["validation"])
    # Headings and the paragraph lines under them are separate documents; no document is blank or one-file-long.
    assert texts == _wikitext_paragraphs()
    assert texts[:3] == [
        " = Valkyria Chronicles III = ",
        " Senjō no Valkyria 3 is a tactical role @-@ playing video game . \n It came out in 2011 . ",
        " = = Gameplay = = ",
    ]
    articles = load_raw_datasets(DataArguments(train_file=[path], validation_file=path, sample_by="article"))
    # Each top-level article whole, sections and subsections included: the pages lm-eval's wikitext task scores.
    expected = document_level_pages(wikitext_text())
    assert _texts(articles["validation"]) == expected
    assert len(expected) == len(ARTICLES) and expected[0].startswith(" = Valkyria Chronicles III = \n \n Senj")
    assert " = = = Construction = = = \n" in expected[1]


def test_article_headings():
    assert is_article_heading(" = Robert Boulter = \n")
    assert is_article_heading("= Robert Boulter =")
    assert not is_article_heading(" = = Career = = \n")
    assert not is_article_heading(" = = = 2000 – 2005 = = = \n")
    assert not is_article_heading(" x = y = z \n")
    # Text before the first title is an article of its own, and blank lines before a title belong to none.
    # The line break before a title belongs to neither article (as in lm-eval's wikitext pages).
    lines = ["lead text\n", " \n", " = T = \n", " body \n", " \n"]
    assert list(iter_documents(lines, "article")) == ["lead text\n ", " = T = \n body \n \n"]


def test_one_example_per_line_is_read_per_line(tmp_path, caplog):
    lines = [f"example number {index} has a few words" for index in range(500)]
    path = _write(tmp_path / "corpus.txt", "\n".join(lines) + "\n")
    with caplog.at_level(logging.INFO, logger="hf_textgen"):
        raw = load_raw_datasets(DataArguments(train_file=[path], validation_split_percentage=5))
    assert _texts(raw["validation"]) == [line + "\n" for line in lines[:25]]
    assert len(raw["train"]) == 475
    # One log line says which reading was chosen and why.
    (record,) = [r for r in caplog.records if "one example per line" in r.getMessage()]
    assert "corpus.txt" in record.getMessage() and "no blank line" in record.getMessage()
    # The reading comes back to the caller too (a split-off validation set shares it); nothing more is logged then.
    readings = {}
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hf_textgen"):
        load_raw_datasets(DataArguments(train_file=[path]), readings=readings, log_readings=False)
    assert not caplog.records
    assert readings["train"] == readings["validation"]
    assert (readings["train"].sample_by, readings["train"].read_by) == ("auto", ("line",))
    assert readings["train"].by_line() == ["corpus.txt"]
    # Asking for paragraphs explicitly is obeyed: the file is then one document.
    whole = load_raw_datasets(DataArguments(train_file=[path], validation_file=path, sample_by="paragraph"))
    assert len(whole["validation"]) == 1


def test_lines_are_cut_at_line_breaks_only(tmp_path):
    # Text extracted from PDFs starts each page with a form feed; Unicode text may hold U+2028. Neither ends a line
    # in a file, so neither makes a blank line that would turn one example per line into one paragraph.
    lines = [f"example {index} has a few words\n" for index in range(20)]
    lines[3] = "\x0cpage two starts with a form feed\n"
    lines[5] = "a line\u2028with a line separator inside\n"
    path = _write(tmp_path / "extracted.txt", "".join(lines))
    readings = {}
    raw = load_raw_datasets(DataArguments(train_file=[path], validation_file=path), readings=readings)
    assert readings["validation"].read_by == ("line",)
    assert _texts(raw["validation"]) == lines


def test_paragraph_files_are_not_read_per_line(tmp_path, caplog):
    path = _write(tmp_path / "a.txt", "\n\nOne\nparagraph.\n\nTwo.\n\n\n")
    with caplog.at_level(logging.INFO, logger="hf_textgen"):
        raw = load_raw_datasets(DataArguments(train_file=[path], validation_file=path))
    assert _texts(raw["validation"]) == ["One\nparagraph.", "Two."]
    assert not [r for r in caplog.records if "one example per line" in r.getMessage()]


def _hub_rows(text: str) -> list[str]:
    # The Hub's Salesforce/wikitext rows are the file's lines, with "" for each " \n" line.
    return ["" if not line.strip() else line for line in text.splitlines(keepends=True)]


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("sample_by", ["auto", "article"])
def test_hub_wikitext_rows_read_like_the_files(tmp_path, monkeypatch, streaming, sample_by):
    text = wikitext_text()
    calls = []

    def fake_load_dataset(path, name=None, split=None, cache_dir=None, streaming=False):
        calls.append((path, name))
        splits = ("train", "validation", "test")
        loaded = DatasetDict({split: Dataset.from_dict({"text": _hub_rows(text)}) for split in splits})
        if streaming:
            return IterableDatasetDict({split: dataset.to_iterable_dataset() for split, dataset in loaded.items()})
        return loaded

    monkeypatch.setattr("hf_textgen.data.loading.datasets.load_dataset", fake_load_dataset)
    args = DataArguments(
        dataset_name="Salesforce/wikitext", dataset_config_name="wikitext-103-raw-v1", sample_by=sample_by
    )
    hub_readings, file_readings = {}, {}
    from_hub = load_raw_datasets(
        dataclasses.replace(args, streaming=streaming), extra_splits=("test",), readings=hub_readings
    )
    path = _write(tmp_path / "wiki.valid.raw", text)
    from_file = load_raw_datasets(
        DataArguments(train_file=[path], validation_file=path, sample_by=sample_by), readings=file_readings
    )
    assert calls == [("Salesforce/wikitext", "wikitext-103-raw-v1")]
    # The same documents; the Hub's rows only lack the single space of WikiText's blank lines.
    assert _texts(from_hub["test"]) == _texts(from_hub["validation"])
    assert _texts(from_hub["validation"]) == [re.sub(r"(?m)^ $", "", text) for text in _texts(from_file["validation"])]
    # And the loader says so, for the model folder's record (training_data.json).
    read_by = ("paragraph",) if sample_by == "auto" else ("article",)
    assert {split: reading.read_by for split, reading in hub_readings.items()} == dict.fromkeys(
        ("train", "validation", "test"), read_by
    )
    assert file_readings["train"].read_by == read_by and file_readings["train"].sample_by == sample_by


def test_a_single_document_still_splits(tmp_path):
    text = "".join(f"line {index} of one long document\n" for index in range(100))
    path = _write(tmp_path / "book.txt", text)
    raw = load_raw_datasets(DataArguments(train_file=[path], sample_by="document", validation_split_percentage=10))
    (validation,), (train,) = _texts(raw["validation"]), _texts(raw["train"])
    assert validation.startswith("line 0 ") and validation.endswith("line 9 of one long document")
    assert train.startswith("line 10 ") and validation + "\n" + train + "\n" == text
    tiny = _write(tmp_path / "tiny.txt", "oneword\n")
    with pytest.raises(UserError, match="too little to split.*--validation_file"):
        load_raw_datasets(DataArguments(train_file=[tiny]))


@pytest.mark.parametrize("streaming", [False, True])
def test_two_documents_split_into_two_non_empty_parts(tmp_path, streaming):
    path = _write(tmp_path / "two.txt", "First document.\n\nSecond document.\n")
    raw = load_raw_datasets(DataArguments(train_file=[path], streaming=streaming, validation_split_percentage=50))
    assert _texts(raw["validation"]) == ["First document."]
    assert _texts(raw["train"]) == ["Second document."]


def test_compressed_crlf_and_bom_files(tmp_path):
    import gzip

    text = "\ufeffFirst paragraph,\r\nstill the first.\r\n \r\nSecond one.\r\n"
    with gzip.open(tmp_path / "wiki.valid.raw.gz", "wt", encoding="utf-8", newline="") as handle:
        handle.write(text)
    path = str(tmp_path / "wiki.valid.raw.gz")
    raw = load_raw_datasets(DataArguments(train_file=[path], validation_file=path))
    assert _texts(raw["validation"]) == ["First paragraph,\nstill the first.", "Second one."]


def test_wikitext_folder(tmp_path):
    for name in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        _write(tmp_path / name, wikitext_text())
    raw = load_raw_datasets(DataArguments(dataset_name=str(tmp_path), sample_by="article"), extra_splits=("test",))
    assert set(raw) == {"train", "validation", "test"}
    assert len(raw["validation"]) == len(raw["test"]) == len(ARTICLES)
