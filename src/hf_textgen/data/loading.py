"""Load raw text as a `DatasetDict` (or `IterableDatasetDict`) with "train" and "validation" splits.

Every source ends up the same shape: one string column named "text", one row per document.

- A Hub id (`dataset_name="Salesforce/wikitext"`, `dataset_config_name="wikitext-103-raw-v1"`) through
  `datasets.load_dataset`; a local folder of data files (or one written by `save_to_disk`) works the same way.
- Local files (`train_file`, `validation_file`), their format chosen by extension: plain text (`.txt`, `.text`,
  `.md`, `.rst`, WikiText's `.raw` and `.tokens`, or no extension), `.json` / `.jsonl`, `.csv`, `.parquet`,
  optionally compressed (`.gz`, `.bz2`, `.xz`, `.zst`).
- The bundled Shakespeare corpus when nothing is named.

What a document is in plain text is `DataArguments.sample_by` (see `hf_textgen.data.documents`): by default a
paragraph (in the bundled corpus one speech, stage direction or heading; in WikiText one paragraph or heading), or
a line for files of one example per line; `article` keeps each WikiText article whole. Rows of a Hub dataset in
WikiText's one-line-per-row layout are regrouped the same way. Documents are later separated by EOS when
tokenized (`tokenize_and_group`).

Without a validation file or split, the validation set is the first `validation_split_percentage` percent of the
training documents (as run_clm.py's `train[:5%]`, at least one, never all), the training set the rest:
deterministic, no shuffling; a single document is cut in two at a line break. In streaming mode, where the length
is unknown, document `i` goes to validation when `i * percentage % 100 < percentage` (document 0 does, document 1
does not). The training pipeline can instead split packed blocks (`split_validation=False`, then
`tokenize_and_group`), which works for any corpus of two blocks or more.
"""

from __future__ import annotations

import codecs
import glob
import hashlib
import io
import logging
import lzma
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import datasets
import fsspec
import fsspec.utils
from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, Value
from datasets.data_files import DataFilesDict, get_data_patterns

from hf_textgen.data.arguments import DataArguments
from hf_textgen.data.documents import AUTO_PROBE_CHARS, is_blank, iter_documents, separates_paragraphs
from hf_textgen.data.encoding import conversion_advice
from hf_textgen.errors import UserError

logger = logging.getLogger(__name__)

_CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
# The document reader's own code keys the datasets cache, as each file's size and mtime do: text cached by a version
# that cut documents differently is read again rather than served as it was.
_READER_SIGNATURE = hashlib.sha256(Path(__file__).with_name("documents.py").read_bytes()).hexdigest()[:16]
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
# Extensions of plain text: read by `hf_textgen.data.documents`, not by a datasets builder.
_TEXT_EXTENSIONS = (".txt", ".text", ".md", ".markdown", ".rst", ".raw", ".tokens", ".tok")
# Extension -> datasets' packaged builder ("text" meaning our own reader).
_BUILDERS = {
    **dict.fromkeys(_TEXT_EXTENSIONS, "text"),
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
# Bytes read to check that a file is UTF-8: cheap, and datasets reports any later bad byte while loading.
_ENCODING_PROBE_BYTES = 1 << 16
# What a damaged compressed stream raises while it is read (gzip.BadGzipFile and bz2's errors are OSErrors).
_DAMAGED_STREAM_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error)
# fsspec's codec names -> the command that tests such a file.
_COMPRESSION_TOOLS = {"gzip": "gzip", "bz2": "bzip2", "xz": "xz", "lzma": "xz", "zstd": "zstd"}


def bundled_corpus_files() -> dict[str, str]:
    """Paths of the bundled Shakespeare corpus: `{"train": ..., "validation": ...}`."""
    return {split: str(_CORPUS_DIR / f"{split}.txt") for split in ("train", "validation")}


def _data_extension(path: str) -> str:
    """The lower-case extension that names the format, under any compression suffix ("a.JSONL.gz" -> ".jsonl")."""
    name = path.lower()
    for suffix in _COMPRESSION_SUFFIXES:
        name = name.removesuffix(suffix)
    return os.path.splitext(name)[1]


def _builder_for(path: str) -> str:
    """The datasets builder name for a data file, from its extension (none at all: plain text)."""
    extension = _data_extension(path)
    builder = _BUILDERS.get(extension, "text" if extension == "" else None)
    if builder is None:
        raise UserError(
            f"cannot tell the format of {path}: use plain text (.txt, .raw, .tokens, .md, ...), .json, .jsonl, .csv "
            "or .parquet (optionally .gz)"
        )
    return builder


def expand_data_files(patterns: list[str] | str, flag: str = "--train_file") -> list[str]:
    """Expand paths and globs to a sorted list of existing, non-empty files; a missing or empty one is a UserError.

    Text files are also checked to start as valid UTF-8, and compressed files to decompress (only the first 64 kB
    is read, so this stays cheap).
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    files: list[str] = []
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        if glob.has_magic(expanded):
            matches = sorted(path for path in glob.glob(expanded, recursive=True) if os.path.isfile(path))
            if not matches:
                raise UserError(f"{flag} {pattern!r} matches no file; check the path or glob")
            files.extend(matches)
        elif os.path.isdir(expanded):
            raise UserError(f"{flag} {pattern} is a folder; pass files or a glob such as '{pattern}/*.txt'")
        elif not os.path.isfile(expanded):
            raise UserError(f"{flag} {pattern} does not exist; check the path")
        else:
            files.append(expanded)
    for path in files:
        if os.path.getsize(path) == 0:
            raise UserError(f"{flag} {path} is empty; give a file with text in it")
        if path.lower().endswith(_COMPRESSION_SUFFIXES):
            _check_compressed(path)
        elif _builder_for(path) in ("text", "json", "csv"):
            check_utf8(path)
    return list(dict.fromkeys(files))  # drop duplicates, keep order


def _damaged_file_error(path: str, error: BaseException) -> UserError | None:
    """A UserError for `error`, raised reading the compressed file `path` because its stream is damaged (not
    compressed that way at all, cut off, corrupt); None when `path` is not compressed."""
    if not path.lower().endswith(_COMPRESSION_SUFFIXES):
        return None
    compression = fsspec.utils.infer_compression(path) or "compressed"
    tool = _COMPRESSION_TOOLS.get(compression, compression)
    return UserError(
        f"{path} is not a readable {compression} file ({error}); check it with `{tool} -t {path}`, or fetch it again"
    )


def _check_compressed(path: str) -> None:
    """Raise a UserError unless the first 64 kB of `path` decompress (and, for text, decode as UTF-8)."""
    compression = fsspec.utils.infer_compression(path)
    if compression is None:  # fsspec knows the suffix only when its codec is installed: zstandard is optional
        raise UserError(
            f"{path} is zstd-compressed and the zstandard package is not installed: `pip install zstandard`, or "
            f"decompress it with `zstd -d {path}`"
        )
    try:
        with fsspec.open(path, mode="rb", compression=compression) as handle:
            head = handle.read(_ENCODING_PROBE_BYTES)
    except Exception as error:  # each codec raises its own errors (zstandard's are no OSError)
        raise _damaged_file_error(path, error) from None
    if _builder_for(path) in ("text", "json", "csv"):
        _check_utf8_head(path, head)


def check_utf8(path: str) -> None:
    """Raise a UserError unless the first 64 kB of `path` decode as UTF-8."""
    with open(path, "rb") as handle:
        _check_utf8_head(path, handle.read(_ENCODING_PROBE_BYTES))


def _check_utf8_head(path: str, head: bytes) -> None:
    try:
        # Incremental decoding: a multi-byte character cut by the probe's end is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not UTF-8 text (bad byte at offset {error.start}); {conversion_advice(head, path)}"
        ) from None
    # NUL is valid UTF-8 but never text: UTF-16 without a BOM (every other byte NUL for Latin text), or a binary file.
    if (offset := head.find(b"\x00")) >= 0:
        raise UserError(f"{path} is not UTF-8 text (NUL byte at offset {offset}); {conversion_advice(head, path)}")


def _first_bad_utf8(paths: list[str]) -> tuple[str, int, bytes] | None:
    """The first file of `paths` that is not UTF-8, with the offset of its bad byte and the bytes from there on."""
    for path in paths:
        if not os.path.isfile(path) or path.lower().endswith(_COMPRESSION_SUFFIXES):
            continue
        decoder = codecs.getincrementaldecoder("utf-8")()
        offset = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as error:
                    return path, offset + error.start, chunk[error.start : error.start + _ENCODING_PROBE_BYTES]
                offset += len(chunk)
    return None


def encoding_user_error(error: BaseException, files: list[str] | None = None) -> UserError | None:
    """A UserError when `error` was caused by undecodable bytes in a data file (datasets wraps the original).

    Args:
        error: What loading or reading the data raised.
        files: The data files that were read, when known: the message then names the bad one and the offset.
    """
    cause = error
    while cause is not None and not isinstance(cause, UnicodeDecodeError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    if (found := _first_bad_utf8(files or [])) is not None:
        path, offset, data = found
        return UserError(f"{path} is not UTF-8 text (bad byte at offset {offset}); {conversion_advice(data, path)}")
    # Which file it was is not known here; datasets' read chunk is still enough to guess the encoding from.
    advice = conversion_advice(cause.object) if isinstance(cause.object, bytes) else "convert it to UTF-8 with iconv"
    return UserError(f"a data file is not UTF-8 text ({cause.reason}); {advice}")


_TEXT_FEATURES = Features({"text": Value("string")})


@dataclass(frozen=True)
class TextReading:
    """How one split of plain text (files, or a dataset's text-only rows) was cut into documents.

    Attributes:
        sample_by: The rule asked for (`DataArguments.sample_by`): "auto", "paragraph", "line", "article" or
            "document".
        read_by: What each source was read by ("paragraph", "line", "article" or "document"), in order: one per
            file, or one for a dataset's rows.
        reasons: Why, one per source (e.g. "blank lines separate its paragraphs", "--sample_by article").
        sources: The file names (without folders), or a description of the rows.
        keep_linebreaks: Whether lines read by `line` kept their trailing line break (`DataArguments`); None for a
            dataset's rows, which keep what they hold.
    """

    sample_by: str
    read_by: tuple[str, ...]
    reasons: tuple[str, ...]
    sources: tuple[str, ...]
    keep_linebreaks: bool | None = None

    @property
    def documents(self) -> str:
        """The reading(s) used, e.g. "paragraph", or "line, paragraph" when sources were read differently."""
        return ", ".join(sorted(set(self.read_by)))

    def describe(self) -> str:
        """`by paragraph (blank lines separate its paragraphs)`, one clause per distinct reading."""
        ways = sorted({f"by {read_by} ({reason})" for read_by, reason in zip(self.read_by, self.reasons)})
        return "; ".join(ways)

    def by_line(self) -> list[str]:
        """The sources `auto` read one example per line (`line` chosen because no blank line separates lines)."""
        return [
            source
            for source, read_by, reason in zip(self.sources, self.read_by, self.reasons)
            if read_by == "line" and reason.startswith(_BY_LINE_REASON)
        ]


def _load(path: str, *, split: str | None = None, cache_dir: str | None, streaming: bool, **kwargs):
    """`datasets.load_dataset` with data-file problems (e.g. a bad byte deep in a file) turned into UserErrors."""
    try:
        return datasets.load_dataset(path, split=split, cache_dir=cache_dir, streaming=streaming, **kwargs)
    except UserError:
        raise
    except Exception as error:
        data_files = kwargs.get("data_files")
        if isinstance(data_files, dict):
            files = [file for split_files in data_files.values() for file in split_files]
        else:
            files = [str(file) for file in Path(path).rglob("*")] if os.path.isdir(path) else []
        if (user_error := encoding_user_error(error, files)) is not None:
            raise user_error from None
        if "corresponds to no data" in str(error):  # datasets' words for a split that produced no rows
            raise UserError(f"the data in {path} holds no text; give files with text in it") from None
        raise


def _open_text(path: str):
    """A text handle on `path`, decompressing by extension; universal newlines, so "\r\n" files read as "\n"."""
    handle = fsspec.open(path, mode="rb", compression="infer").open()
    return io.TextIOWrapper(handle, encoding="utf-8-sig", newline=None)  # a leading BOM is not text


def _head_lines(path: str, max_chars: int = AUTO_PROBE_CHARS) -> tuple[list[str], bool]:
    """The whole lines within the first `max_chars` characters of a text file, and whether that is all of it."""
    with _open_text(path) as handle:
        head = handle.read(max_chars)
        complete = len(head) < max_chars
    # Lines as reading the file yields them: cut at "\n" only (str.splitlines also cuts at form feeds and U+2028).
    lines = io.StringIO(head, newline="\n").readlines()
    return (lines if complete or len(lines) < 2 else lines[:-1]), complete  # the last line may be cut


# How `auto` says it chose one example per line (`TextReading.by_line` looks for it).
_BY_LINE_REASON = "no blank line separates"


def _choose_reading(path: str, data_args: DataArguments) -> tuple[str, str]:
    """`(sample_by, reason)` for one text file: `auto` becomes `line` when no blank line separates its lines.

    Raises:
        UserError: The file holds only blank lines (found here when it is small, before any progress bar).
    """
    try:
        lines, complete = _head_lines(path)
    except _DAMAGED_STREAM_ERRORS as error:
        if (user_error := _damaged_file_error(path, error)) is None:
            raise
        raise user_error from None
    if complete and all(is_blank(line) for line in lines):
        raise UserError(f"{path} holds no text (only blank lines); give a file with text in it")
    if data_args.sample_by != "auto":
        return data_args.sample_by, f"--sample_by {data_args.sample_by}"
    found, num_lines = separates_paragraphs(lines)
    if found:
        return "paragraph", "blank lines separate its paragraphs"
    if num_lines > 1:
        probed = "" if os.path.getsize(path) <= AUTO_PROBE_CHARS else " in its first MiB"
        return "line", f"{_BY_LINE_REASON} its {num_lines} lines{probed}"
    return "paragraph", "a single paragraph"


def shown_sources(sources: list[str] | tuple[str, ...]) -> str:
    """Up to three source names for a log line: "a.txt, b.txt, c.txt, ... (12 files)"."""
    if len(sources) <= 3:
        return ", ".join(sources)
    return f"{', '.join(sources[:3])}, ... ({len(sources)} files)"


def log_reading(reading: TextReading) -> None:
    """One log line: how a split's text is cut into documents, and why (a warning when `auto` chose lines)."""
    by_line = reading.by_line()
    if by_line:
        logger.warning(
            "reading %s one example per line: %s (pass --sample_by paragraph or document to read it otherwise)",
            shown_sources(by_line),
            reading.reasons[reading.sources.index(by_line[0])],
        )
    else:
        logger.info("reading %s %s", shown_sources(reading.sources), reading.describe())


def _generate_documents(
    files: list[str], readings: list[str], signatures: list[str], keep_linebreaks: bool, reader: str
):
    """Rows `{"text": document}` of text files (`signatures`, size and mtime, and `reader` only key the datasets
    cache)."""
    for path, sample_by in zip(files, readings):
        try:
            with _open_text(path) as handle:
                if sample_by == "document":
                    # The whole file at once: no point splitting it into lines to join them again.
                    yield from ({"text": text} for text in iter_documents([handle.read()], "document"))
                else:
                    yield from ({"text": text} for text in iter_documents(handle, sample_by, keep_linebreaks))
        except _DAMAGED_STREAM_ERRORS as error:
            if (user_error := _damaged_file_error(path, error)) is None:
                raise
            raise user_error from None


def _raised_user_error(error: BaseException | None) -> UserError | None:
    """The UserError our own generator raised, which datasets wraps in its DatasetGenerationError."""
    while error is not None and not isinstance(error, UserError):
        error = error.__cause__ or error.__context__
    return error


def _file_signature(path: str) -> str:
    stat = os.stat(path)
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _load_text_files(
    files: list[str], data_args: DataArguments, cache_dir: str | None, log: bool
) -> tuple[Dataset | IterableDataset, TextReading]:
    """Documents of plain-text files as a one-column ("text") dataset, read by `hf_textgen.data.documents`; with
    `log`, the reading is logged before the (possibly long) read."""
    try:
        readings = [_choose_reading(path, data_args) for path in files]
    except UnicodeDecodeError as error:
        raise encoding_user_error(error, files) from None
    reading = TextReading(
        sample_by=data_args.sample_by,
        read_by=tuple(sample_by for sample_by, _ in readings),
        reasons=tuple(reason for _, reason in readings),
        sources=tuple(os.path.basename(path) for path in files),
        keep_linebreaks=data_args.keep_linebreaks,
    )
    if log:
        log_reading(reading)
    gen_kwargs = {
        "files": files,
        "readings": [sample_by for sample_by, _ in readings],
        # A changed file must not be served from the cache of its old content.
        "signatures": [_file_signature(path) for path in files],
        "keep_linebreaks": data_args.keep_linebreaks,
        "reader": _READER_SIGNATURE,
    }
    try:
        if data_args.streaming:
            dataset = IterableDataset.from_generator(
                _generate_documents, features=_TEXT_FEATURES, gen_kwargs=gen_kwargs
            )
        else:
            dataset = Dataset.from_generator(
                _generate_documents, features=_TEXT_FEATURES, gen_kwargs=gen_kwargs, cache_dir=cache_dir
            )
    except Exception as error:
        if (user_error := encoding_user_error(error, files) or _raised_user_error(error)) is not None:
            raise user_error from None
        if "corresponds to no data" in str(error):  # datasets' words for a split that produced no rows
            raise UserError(f"the data in {', '.join(files)} holds no text; give files with text in them") from None
        raise
    return dataset, reading


# Rows of a text-only dataset read to tell line-per-row layouts (WikiText) from one document per row.
_AUTO_PROBE_ROWS = 10_000


def _row_lines(source) -> Iterator[str]:
    """The rows of a text-only dataset as the lines of a file (each ending with a line break)."""
    for row in source:
        text = row["text"]
        yield text if text.endswith("\n") else text + "\n"


def _generate_row_documents(source, sample_by: str, reader: str):
    yield from ({"text": text} for text in iter_documents(_row_lines(source), sample_by))


def _regroup_rows(
    dataset: Dataset | IterableDataset, data_args: DataArguments, log: bool
) -> tuple[Dataset | IterableDataset, TextReading]:
    """Documents of a text-only dataset whose rows may be lines (the Hub's WikiText: "" between paragraphs).

    The rows are read as the lines of a file: `auto` keeps one document per row unless blank rows separate
    paragraphs; `article` joins WikiText's rows into whole articles. Blank rows are dropped.
    """
    sample_by = data_args.sample_by
    reason = f"--sample_by {sample_by}"
    if sample_by == "auto":
        probe = (
            dataset.take(_AUTO_PROBE_ROWS)
            if isinstance(dataset, IterableDataset)
            else dataset.select(range(min(_AUTO_PROBE_ROWS, len(dataset))))
        )
        if separates_paragraphs(_row_lines(probe))[0]:
            sample_by, reason = "paragraph", "blank rows separate its paragraphs"
        else:
            sample_by, reason = "line", "one example per row: no blank rows separate paragraphs"
    reading = TextReading(data_args.sample_by, (sample_by,), (reason,), ("the dataset's rows",))
    if log:
        log_reading(reading)
    if sample_by == "line":

        def drop_blank(batch: dict) -> dict:
            return {"text": [text for text in batch["text"] if text and not text.isspace()]}

        kwargs = (
            {"features": _TEXT_FEATURES} if isinstance(dataset, IterableDataset) else {"desc": "Dropping blank rows"}
        )
        return dataset.map(drop_blank, batched=True, remove_columns=["text"], **kwargs), reading
    gen_kwargs = {"source": dataset, "sample_by": sample_by, "reader": _READER_SIGNATURE}
    if isinstance(dataset, IterableDataset):
        regrouped = IterableDataset.from_generator(
            _generate_row_documents, features=_TEXT_FEATURES, gen_kwargs=gen_kwargs
        )
    else:
        regrouped = Dataset.from_generator(_generate_row_documents, features=_TEXT_FEATURES, gen_kwargs=gen_kwargs)
    return regrouped, reading


def _load_files(
    files: list[str], data_args: DataArguments, cache_dir: str | None, flag: str, log: bool
) -> tuple[Dataset | IterableDataset, TextReading | None]:
    """One split of local files; plain text comes with its `TextReading` (rows of other formats with None)."""
    builders = {_builder_for(path) for path in files}
    if len(builders) > 1:
        raise UserError(f"{flag} files mix formats ({', '.join(sorted(builders))}); pass files of one format")
    builder = builders.pop()
    if builder == "text":
        return _load_text_files(files, data_args, cache_dir, log)
    loaded = _load(
        builder, data_files={"train": files}, split="train", cache_dir=cache_dir, streaming=data_args.streaming
    )
    return loaded, None


def _load_folder(
    folder: str, data_args: DataArguments, cache_dir: str | None, log: bool
) -> tuple[DatasetDict | IterableDatasetDict, dict[str, TextReading]]:
    """A local folder of data files (or written by `save_to_disk`), with the `TextReading` of each plain-text split."""
    if (Path(folder) / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(folder)
        if data_args.streaming:
            loaded = IterableDatasetDict({split: dataset.to_iterable_dataset() for split, dataset in loaded.items()})
        return loaded, {}
    files = [str(path) for path in sorted(Path(folder).rglob("*")) if path.is_file() and not path.name.startswith(".")]
    data_files = [path for path in files if _data_extension(path) in _BUILDERS]
    if not data_files:
        raise UserError(f"folder {folder} holds no text (.txt, .raw, ...), .json, .jsonl, .csv or .parquet file")
    expand_data_files(data_files, flag="--dataset_name")
    builders = {_builder_for(path) for path in data_files}
    if builders != {"text"}:
        # datasets infers the builder and the splits (train*/valid*/test* file names) from the folder itself.
        return _load(folder, cache_dir=cache_dir, streaming=data_args.streaming), {}
    # Plain text goes through our own reader; the split of each file is inferred by datasets' own file patterns,
    # which name files by their absolute, resolved paths.
    by_resolved_path = {os.path.realpath(path): path for path in data_files}
    split_files = DataFilesDict.from_patterns(get_data_patterns(folder), base_path=folder)
    loaded = {}
    for split, paths in split_files.items():
        resolved = [os.path.realpath(path) for path in paths]
        files = [by_resolved_path[path] for path in resolved if path in by_resolved_path]
        if files:
            loaded[str(split)] = _load_text_files(files, data_args, cache_dir, log)
    container = IterableDatasetDict if data_args.streaming else DatasetDict
    return container({split: dataset for split, (dataset, _) in loaded.items()}), {
        split: reading for split, (_, reading) in loaded.items()
    }


def _load_hub(
    data_args: DataArguments, cache_dir: str | None, log: bool
) -> tuple[DatasetDict | IterableDatasetDict, dict[str, TextReading]]:
    """A Hub dataset; the splits of a text-only one (WikiText: one line per row) are regrouped as files are read.

    Returns the splits and the `TextReading` of each regrouped one (rows of other datasets are documents as they are).
    """
    try:
        loaded = _load(
            data_args.dataset_name,
            name=data_args.dataset_config_name,
            cache_dir=cache_dir,
            streaming=data_args.streaming,
        )
        splits, readings = {}, {}
        for split, dataset in loaded.items():
            if column_names(dataset) == ["text"]:
                splits[split], readings[split] = _regroup_rows(dataset, data_args, log)
            else:
                splits[split] = dataset
        return type(loaded)(splits), readings
    except UserError:
        raise
    except Exception as error:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
        reason = "the Hugging Face Hub is unreachable (offline)" if offline else f"{type(error).__name__}: {error}"
        name = data_args.dataset_name
        if data_args.dataset_config_name:
            name += f" ({data_args.dataset_config_name})"
        message = f"could not load dataset {name}: {reason}; pass local data with --train_file instead"
        raise UserError(" ".join(message.split())) from None  # one line, however long datasets' message is


def column_names(dataset: Dataset | IterableDataset) -> list[str]:
    """The dataset's column names, reading the first row when a streaming dataset does not know them yet."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    # Some streaming builders (json) only know their columns once a row is read.
    first = next(iter(dataset), None)
    return list(first) if first is not None else []


def _as_text_column(
    dataset: Dataset | IterableDataset, text_column_name: str | None, split: str
) -> Dataset | IterableDataset:
    """Rename the text column to "text" (autodetected unless named); other columns are kept."""
    columns = column_names(dataset)
    if not columns:
        raise UserError(f"the {split} data holds no text; give a file with text in it")
    if text_column_name is not None:
        if text_column_name not in columns:
            raise UserError(
                f"the {split} data has no column {text_column_name!r} (columns: {', '.join(columns)}); "
                "fix --text_column_name"
            )
        column = text_column_name
    elif "text" in columns:
        column = "text"
    else:
        features = dataset.features or {}
        string_dtypes = ("string", "large_string")
        strings = [name for name in columns if getattr(features.get(name), "dtype", None) in string_dtypes]
        if features and len(strings) == 1:
            column = strings[0]
        else:
            raise UserError(
                f"cannot tell which column of the {split} data holds the text (columns: {', '.join(columns)}); "
                "pass --text_column_name"
            )
    if column != "text":
        if "text" in columns:
            dataset = dataset.remove_columns("text")
        dataset = dataset.rename_column(column, "text")
    return dataset


def is_validation_index(index: int, percentage: int) -> bool:
    """Whether item `index` of a stream goes to validation: `percentage`% of items, spread evenly.

    Item 0 always does and item 1 never does (for `percentage` < 100), so any stream of two items or more gives
    two non-empty parts, whatever its length.
    """
    return index * percentage % 100 < percentage


def num_validation_items(num_items: int, percentage: int) -> int:
    """How many of `num_items` (>= 2) go to validation: `percentage`%, at least one, never all."""
    return min(num_items - 1, max(1, num_items * percentage // 100))


def _split_document(text: str, percentage: int) -> tuple[str, str] | None:
    """Cut one document in two at the line break (else the space) nearest `percentage`% of its length."""
    target = len(text) * percentage // 100
    for separator in ("\n", " "):
        after, before = text.find(separator, target), text.rfind(separator, 0, target)
        for cut in sorted((c for c in (after, before) if c > 0), key=lambda c: abs(c - target)):
            head, tail = text[:cut].strip("\r\n"), text[cut:].strip("\r\n")
            if head.strip() and tail.strip():
                return tail, head
    return None


def _split_validation(train: Dataset | IterableDataset, percentage: int) -> tuple:
    """Deterministic (train, validation) from one split of documents; see the module docstring."""
    if isinstance(train, IterableDataset):
        validation = train.filter(lambda _, index: is_validation_index(index, percentage), with_indices=True)
        train = train.filter(lambda _, index: not is_validation_index(index, percentage), with_indices=True)
        return train, validation
    if len(train) == 1 and train.column_names != ["text"]:
        # A row that holds more than text (a target, a label) cannot be cut in two.
        raise UserError(
            "the training data is one row: too few to split off a validation set; give more rows or a "
            "--validation_file"
        )
    if len(train) == 1:
        # One document (a whole book, a file read with --sample_by document): its head is the validation text.
        parts = _split_document(train[0]["text"], percentage)
        if parts is None:
            raise UserError(
                "the training data is one short document: too little to split off a validation set; give more text "
                "or a --validation_file"
            )
        return (Dataset.from_dict({"text": [part]}, features=_TEXT_FEATURES) for part in parts)
    if len(train) == 0:
        raise UserError("the training data holds no text; give a file with text in it")
    num_validation = num_validation_items(len(train), percentage)
    return train.select(range(num_validation, len(train))), train.select(range(num_validation))


def load_raw_datasets(
    data_args: DataArguments,
    cache_dir: str | None = None,
    split_validation: bool = True,
    extra_splits: tuple[str, ...] = (),
    readings: dict[str, TextReading] | None = None,
    log_readings: bool = True,
) -> DatasetDict | IterableDatasetDict:
    """Load the raw text named by `data_args` as "train" and "validation" splits with a "text" column.

    Args:
        data_args: Where the text is (`dataset_name` / `dataset_config_name`, `train_file` / `validation_file`,
            or nothing for the bundled corpus) and how to read it (`text_column_name`, `sample_by`,
            `keep_linebreaks`, `validation_split_percentage`, `streaming`).
        cache_dir: The datasets cache folder; `None` uses `HF_DATASETS_CACHE`.
        split_validation: Without validation data, split documents off the training data. `False` leaves that
            to `tokenize_and_group`, which splits packed blocks instead (any corpus of two blocks splits).
        extra_splits: Other splits of a Hub dataset or data folder to keep as they are (e.g. `("test",)`).
        readings: A dict to fill with the `TextReading` of each split read as plain text (text files, or a
            dataset's text-only rows), by split name; splits of other rows get none. A validation set split off
            the training text shares its reading.
        log_readings: Log one line per split saying how its text was cut into documents, and why. A caller that
            says it itself (`hf-textgen evaluate`) passes `False`.

    Returns:
        A `DatasetDict` (an `IterableDatasetDict` with `streaming`) holding "train" and "validation" (only "train"
        when there is no validation data and `split_validation` is `False`). When only `validation_file` is given,
        "train" is the bundled corpus' training text.

    Raises:
        UserError: A missing, empty or non-UTF-8 file, an unknown format, an unreachable Hub dataset, a text column
            that cannot be found, data with no documents, or too little to split off a validation set.
    """
    found: dict[str, TextReading | None] = {}
    if data_args.dataset_name is not None:
        if os.path.isdir(data_args.dataset_name):
            loaded, found = _load_folder(data_args.dataset_name, data_args, cache_dir, log_readings)
        else:
            loaded, found = _load_hub(data_args, cache_dir, log_readings)
        if "train" not in loaded:
            raise UserError(
                f"dataset {data_args.dataset_name!r} has no 'train' split (splits: {', '.join(loaded)}); "
                "name train files train*.txt (or similar) or pass --train_file"
            )
        train, validation = loaded["train"], loaded.get("validation")
        missing = [split for split in extra_splits if split not in loaded and split not in ("train", "validation")]
        if missing:
            raise UserError(
                f"dataset {data_args.dataset_name!r} has no {missing[0]!r} split (splits: {', '.join(loaded)}); "
                "fix --split"
            )
        extra = {split: loaded[split] for split in extra_splits if split not in ("train", "validation")}
    else:
        extra = {}
        if data_args.train_file:
            train_files = expand_data_files(data_args.train_file, "--train_file")
        else:
            train_files = [bundled_corpus_files()["train"]]
        train, found["train"] = _load_files(train_files, data_args, cache_dir, "--train_file", log_readings)
        validation = None
        if data_args.validation_file:
            validation_files = expand_data_files(data_args.validation_file, "--validation_file")
            validation, found["validation"] = _load_files(
                validation_files, data_args, cache_dir, "--validation_file", log_readings
            )
        elif not data_args.train_file:
            bundled = [bundled_corpus_files()["validation"]]
            validation, found["validation"] = _load_files(
                bundled, data_args, cache_dir, "--validation_file", log_readings
            )

    splits = {"train": _as_text_column(train, data_args.text_column_name, "train")}
    if validation is not None:
        splits["validation"] = _as_text_column(validation, data_args.text_column_name, "validation")
    if "validation" not in splits and split_validation:
        splits["train"], splits["validation"] = _split_validation(
            splits["train"], data_args.validation_split_percentage
        )
        found["validation"] = found.get("train")
    for split, dataset in extra.items():
        splits[split] = _as_text_column(dataset, data_args.text_column_name, split)
    if not data_args.streaming:
        for split, dataset in splits.items():
            if len(dataset) == 0:
                raise UserError(f"the {split} data holds no text; give a file with text in it")
    if readings is not None:
        readings.update({split: reading for split, reading in found.items() if split in splits and reading})
    container = IterableDatasetDict if data_args.streaming else DatasetDict
    return container(splits)
