"""Load raw text as a `DatasetDict` (or `IterableDatasetDict`) with "train" and "validation" splits.

Every source ends up the same shape: one string column named "text", one row per document.

- A Hub id (`dataset_name="Salesforce/wikitext"`, `dataset_config_name="wikitext-103-raw-v1"`) through
  `datasets.load_dataset`; a local folder of data files (or one written by `save_to_disk`) works the same way.
- Local files (`train_file`, `validation_file`), their format chosen by extension: `.txt` (also `.text`, `.md`),
  `.json` / `.jsonl`, `.csv`, `.parquet`, optionally compressed (`.gz`, `.bz2`, `.xz`, `.zst`).
- The bundled Shakespeare corpus when nothing is named.

What a document is in a plain-text file is `DataArguments.sample_by`: by default a paragraph, i.e. the text between
blank lines (in the bundled corpus one speech, stage direction or heading); `line` makes every line a document
and `document` the whole file. Documents are later separated by EOS when tokenized (`tokenize_and_group`).

Without a validation file or split, the validation set is the first `validation_split_percentage` percent of the
training rows (as run_clm.py's `train[:5%]`), the training set the rest: deterministic, no shuffling. In streaming
mode, where the length is unknown, row `i` goes to validation when `i % 100 < validation_split_percentage`.
"""

from __future__ import annotations

import codecs
import glob
import os
from pathlib import Path

import datasets
from datasets import Dataset, DatasetDict, Features, IterableDataset, IterableDatasetDict, Value

from hf_textgen.data.arguments import DataArguments
from hf_textgen.errors import UserError

_CORPUS_DIR = Path(__file__).resolve().parent / "corpus"
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")
# Extension -> datasets' packaged builder.
_BUILDERS = {
    ".txt": "text",
    ".text": "text",
    ".md": "text",
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".parquet": "parquet",
}
# Bytes read to check that a file is UTF-8: cheap, and datasets reports any later bad byte while loading.
_ENCODING_PROBE_BYTES = 1 << 16


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
    """The datasets builder name for a data file, from its extension."""
    builder = _BUILDERS.get(_data_extension(path))
    if builder is None:
        raise UserError(
            f"cannot tell the format of {path}: use a .txt, .json, .jsonl, .csv or .parquet file (optionally .gz)"
        )
    return builder


def expand_data_files(patterns: list[str] | str, flag: str = "--train_file") -> list[str]:
    """Expand paths and globs to a sorted list of existing, non-empty files; a missing or empty one is a UserError.

    Text files are also checked to start as valid UTF-8 (only the first 64 kB is read, so this stays cheap).
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
        if _builder_for(path) in ("text", "json", "csv") and not path.lower().endswith(_COMPRESSION_SUFFIXES):
            check_utf8(path)
    return list(dict.fromkeys(files))  # drop duplicates, keep order


def check_utf8(path: str) -> None:
    """Raise a UserError unless the first 64 kB of `path` decode as UTF-8."""
    with open(path, "rb") as handle:
        head = handle.read(_ENCODING_PROBE_BYTES)
    try:
        # Incremental decoding: a multi-byte character cut by the probe's end is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise UserError(
            f"{path} is not UTF-8 text (bad byte at offset {error.start}); convert it, e.g. "
            f"`iconv -f latin1 -t utf-8 {path} > fixed.txt`"
        ) from None


def encoding_user_error(error: BaseException) -> UserError | None:
    """A UserError when `error` was caused by undecodable bytes in a data file (datasets wraps the original)."""
    cause = error
    while cause is not None and not isinstance(cause, UnicodeDecodeError):
        cause = cause.__cause__ or cause.__context__
    if cause is None:
        return None
    # The offset would be into datasets' read chunk, not the file, so only the reason is shown.
    return UserError(f"a data file is not UTF-8 text ({cause.reason}); convert it to UTF-8, e.g. with iconv")


def _builder_kwargs(builder: str, data_args: DataArguments) -> dict:
    if builder != "text":
        return {}
    kwargs = {"sample_by": data_args.sample_by}
    if data_args.sample_by == "line":
        kwargs["keep_linebreaks"] = data_args.keep_linebreaks
    return kwargs


def _load(path: str, *, split: str | None = None, cache_dir: str | None, streaming: bool, **kwargs):
    """`datasets.load_dataset` with data-file problems (e.g. a bad byte deep in a file) turned into UserErrors."""
    try:
        return datasets.load_dataset(path, split=split, cache_dir=cache_dir, streaming=streaming, **kwargs)
    except UserError:
        raise
    except Exception as error:
        if (user_error := encoding_user_error(error)) is not None:
            raise user_error from None
        if "corresponds to no data" in str(error):  # datasets' words for a split that produced no rows
            raise UserError(f"the data in {path} holds no text; give files with text in them") from None
        raise


def _clean_documents(batch: dict, sample_by: str) -> dict:
    """Drop blank documents and strip the line breaks around paragraphs (a file's last one ends with its "\\n")."""
    texts = (text.strip("\n") if sample_by == "paragraph" else text for text in batch["text"])
    return {"text": [text for text in texts if text.strip()]}


def _clean_text_dataset(dataset: Dataset | IterableDataset, data_args: DataArguments) -> Dataset | IterableDataset:
    if isinstance(dataset, IterableDataset):
        kwargs = {"features": Features({"text": Value("string")})}  # keeps the column names known without a read
    else:
        kwargs = {"desc": "Dropping blank documents"}
    # Rows may disappear, so the old column is removed and the cleaned one written in its place.
    return dataset.map(
        _clean_documents,
        batched=True,
        remove_columns=["text"],
        fn_kwargs={"sample_by": data_args.sample_by},
        **kwargs,
    )


def _load_files(files: list[str], data_args: DataArguments, cache_dir: str | None, flag: str):
    builders = {_builder_for(path) for path in files}
    if len(builders) > 1:
        raise UserError(f"{flag} files mix formats ({', '.join(sorted(builders))}); pass files of one format")
    builder = builders.pop()
    dataset = _load(
        builder,
        data_files={"train": files},
        split="train",
        cache_dir=cache_dir,
        streaming=data_args.streaming,
        **_builder_kwargs(builder, data_args),
    )
    return _clean_text_dataset(dataset, data_args) if builder == "text" else dataset


def _load_folder(folder: str, data_args: DataArguments, cache_dir: str | None) -> DatasetDict | IterableDatasetDict:
    if (Path(folder) / "dataset_dict.json").is_file():
        loaded = datasets.load_from_disk(folder)
        if data_args.streaming:
            loaded = IterableDatasetDict({split: dataset.to_iterable_dataset() for split, dataset in loaded.items()})
        return loaded
    files = [str(path) for path in sorted(Path(folder).rglob("*")) if path.is_file() and not path.name.startswith(".")]
    data_files = [path for path in files if _data_extension(path) in _BUILDERS]
    if not data_files:
        raise UserError(f"folder {folder} holds no .txt, .json, .jsonl, .csv or .parquet file")
    expand_data_files(data_files, flag="--dataset_name")
    builders = {_builder_for(path) for path in data_files}
    kwargs = _builder_kwargs("text", data_args) if builders == {"text"} else {}
    # datasets infers the builder and the splits (train*/valid*/test* file names) from the folder itself.
    loaded = _load(folder, cache_dir=cache_dir, streaming=data_args.streaming, **kwargs)
    if builders == {"text"}:
        loaded = type(loaded)({split: _clean_text_dataset(dataset, data_args) for split, dataset in loaded.items()})
    return loaded


def _load_hub(data_args: DataArguments, cache_dir: str | None) -> DatasetDict | IterableDatasetDict:
    try:
        return _load(
            data_args.dataset_name,
            name=data_args.dataset_config_name,
            cache_dir=cache_dir,
            streaming=data_args.streaming,
        )
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


def _split_validation(train: Dataset | IterableDataset, percentage: int) -> tuple:
    """Deterministic (train, validation) from one split: the first `percentage`% rows, or every i % 100 < p."""
    if isinstance(train, IterableDataset):
        validation = train.filter(lambda _, index: index % 100 < percentage, with_indices=True)
        train = train.filter(lambda _, index: index % 100 >= percentage, with_indices=True)
        return train, validation
    if len(train) < 2:
        raise UserError(
            f"the training data has {len(train)} document(s): too few to split off a validation set; "
            "give more text or a --validation_file"
        )
    num_validation = max(1, len(train) * percentage // 100)
    return train.select(range(num_validation, len(train))), train.select(range(num_validation))


def load_raw_datasets(data_args: DataArguments, cache_dir: str | None = None) -> DatasetDict | IterableDatasetDict:
    """Load the raw text named by `data_args` as "train" and "validation" splits with a "text" column.

    Args:
        data_args: Where the text is (`dataset_name` / `dataset_config_name`, `train_file` / `validation_file`,
            or nothing for the bundled corpus) and how to read it (`text_column_name`, `sample_by`,
            `keep_linebreaks`, `validation_split_percentage`, `streaming`).
        cache_dir: The datasets cache folder; `None` uses `HF_DATASETS_CACHE`.

    Returns:
        A `DatasetDict` (an `IterableDatasetDict` with `streaming`) holding exactly "train" and "validation".
        When only `validation_file` is given, "train" is the bundled corpus' training text.

    Raises:
        UserError: A missing, empty or non-UTF-8 file, an unknown format, an unreachable Hub dataset, a text column
            that cannot be found, or data with no documents.
    """
    if data_args.dataset_name is not None:
        if os.path.isdir(data_args.dataset_name):
            loaded = _load_folder(data_args.dataset_name, data_args, cache_dir)
        else:
            loaded = _load_hub(data_args, cache_dir)
        if "train" not in loaded:
            raise UserError(
                f"dataset {data_args.dataset_name!r} has no 'train' split (splits: {', '.join(loaded)}); "
                "name train files train*.txt (or similar) or pass --train_file"
            )
        train, validation = loaded["train"], loaded.get("validation")
    else:
        if data_args.train_file:
            train_files = expand_data_files(data_args.train_file, "--train_file")
        else:
            train_files = [bundled_corpus_files()["train"]]
        train = _load_files(train_files, data_args, cache_dir, "--train_file")
        validation = None
        if data_args.validation_file:
            validation_files = expand_data_files(data_args.validation_file, "--validation_file")
            validation = _load_files(validation_files, data_args, cache_dir, "--validation_file")
        elif not data_args.train_file:
            bundled = [bundled_corpus_files()["validation"]]
            validation = _load_files(bundled, data_args, cache_dir, "--validation_file")

    train = _as_text_column(train, data_args.text_column_name, "train")
    if validation is None:
        train, validation = _split_validation(train, data_args.validation_split_percentage)
    else:
        validation = _as_text_column(validation, data_args.text_column_name, "validation")
    if not data_args.streaming:
        for split, dataset in (("train", train), ("validation", validation)):
            if len(dataset) == 0:
                raise UserError(f"the {split} data holds no text; give a file with text in it")
    container = IterableDatasetDict if data_args.streaming else DatasetDict
    return container({"train": train, "validation": validation})
