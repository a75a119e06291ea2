"""What a training run was given, recorded in the model folder so its model card can state it later.

The Trainer leaves the loss history (`trainer_state.json`) and the metrics (`*_results.json`) in the folder, but
not what it was asked to do: the hyperparameters it saves are pickled (`training_args.bin`, which the Hub upload
skips) and the data is not recorded at all. So at the end of training two small JSON files are written beside
them, both free of local paths and tokens (they are uploaded with the model):

- `training_args.json`: the hyperparameters as set (`--learning_rate 1e-3`, not the scheduler's last value;
  `--max_steps 300` rather than the `num_train_epochs` it overrides), plus the number of processes.
- `training_data.json`: the data as used: the files by name and size, or the dataset id and config; how plain
  training text was cut into documents (`text_reading`, which `hf-textgen evaluate` follows by default); the
  languages detected in a sample of the training text; and a prompt taken from it for the usage example.

Languages are identified with `py3langid` (langid.py's model of 97 languages, shipped inside the package, so it
works offline) on chunks of about 600 characters spread through the training text.
"""

from __future__ import annotations

import functools
import json
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from datasets import IterableDataset

TRAINING_ARGS_NAME = "training_args.json"
TRAINING_DATA_NAME = "training_data.json"

# The `TrainingArguments` fields a model card reports (the rest are bookkeeping: paths, logging, hub settings).
RECORDED_TRAINING_ARGS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "optim",
    "max_grad_norm",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "eval_strategy",
    "eval_steps",
    "bf16",
    "fp16",
    "seed",
    "hub_model_id",
)

# Sampling the training text: enough chunks for a stable majority, few enough to stay well under a second.
_LANGUAGE_CHUNKS = 48
_CHUNK_CHARS = 600
_MIN_CHUNK_LETTERS = 20
_MIN_LANGUAGE_SHARE = 0.15  # a language must fill this share of the chunks to be listed
_MIN_CONFIDENCE = 0.5
_SAMPLED_ROWS = 256
# The prompt: its first line, cut to about this many columns (a CJK character takes two).
_PROMPT_COLUMNS = 40
_CLAUSE_ENDS = "，。、；：！？,.;:!?"


@functools.cache
def _language_identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _letters(text: str) -> int:
    return sum(1 for character in text if character.isalpha())


def detect_languages(texts: Iterable[str]) -> list[str]:
    """ISO 639-1 codes of the languages that fill at least 15% of the text, most frequent first.

    Args:
        texts: Documents of the training text; about 48 chunks of 600 characters are read from them.

    Returns:
        Language codes such as `["zh"]` or `["en", "fr"]`; empty when the text has too few letters to tell.
    """
    chunks: list[str] = []
    current = ""
    for text in texts:
        current = f"{current}\n{text}" if current else text
        while len(current) >= _CHUNK_CHARS:
            chunks.append(current[:_CHUNK_CHARS])
            current = current[_CHUNK_CHARS:]
        if len(chunks) >= _LANGUAGE_CHUNKS:
            break
    if current and len(chunks) < _LANGUAGE_CHUNKS:
        chunks.append(current)
    identifier = _language_identifier()
    votes = Counter()
    for chunk in chunks:
        if _letters(chunk) < _MIN_CHUNK_LETTERS:
            continue  # numbers, markup or code: nothing to tell a language by
        language, confidence = identifier.classify(chunk)
        if confidence >= _MIN_CONFIDENCE:
            votes[language] += 1
    total = sum(votes.values())
    return [language for language, count in votes.most_common() if count >= _MIN_LANGUAGE_SHARE * total]


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(character) in "WF" else 1 for character in text)


def prompt_from(texts: Iterable[str], max_columns: int = _PROMPT_COLUMNS) -> str | None:
    """The start of the first line of the training text that holds a few letters, cut at a word or clause.

    Args:
        texts: Documents of the training text, in order.
        max_columns: The width to cut to (a CJK character counts as two columns).

    Returns:
        A short prompt such as `"今天早上天气很好，"` or `"First Citizen:"`, or None when no line has letters.
    """
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if _letters(line) < 3:
                continue
            if _columns(line) <= max_columns:
                return line
            width, cut, best = 0, 0, 0
            for index, character in enumerate(line):
                width += _columns(character)
                if width > max_columns:
                    break
                cut = index + 1
                if character in _CLAUSE_ENDS or (character.isspace() and index >= max_columns // 4):
                    best = index + 1 if character in _CLAUSE_ENDS else index
            return line[: best or cut].rstrip()
    return None


def _sample_rows(dataset, columns: Sequence[str]) -> list[list[str]]:
    """The text columns of up to 256 rows: spread evenly through a dataset of known length, else the first rows."""
    rows: Iterable[dict[str, Any]]
    if isinstance(dataset, IterableDataset):
        rows = dataset.take(_SAMPLED_ROWS)
    else:
        step = max(1, len(dataset) // _SAMPLED_ROWS)
        rows = (dataset[index] for index in range(0, len(dataset), step))
    return [[row[column] if isinstance(row.get(column), str) else "" for column in columns] for row in rows]


def _file_entry(path: str) -> dict[str, Any]:
    return {"name": os.path.basename(path), "bytes": os.path.getsize(path)}


def text_reading_record(reading, eos_after_each_document: bool) -> dict[str, Any]:
    """The `text_reading` entry of `training_data.json`: how the plain training text was cut into documents.

    Args:
        reading: The training split's `hf_textgen.data.loading.TextReading`.
        eos_after_each_document: Whether the tokenized documents were each followed by EOS before packing.

    Returns:
        `{"sample_by": the rule as given ("auto", "paragraph", ...), "read_by": what it came to ("paragraph",
        "line", "article" or "document"; "line, paragraph" when files were read differently),
        "eos_after_each_document": ...}`, plus `keep_linebreaks` when files were read by line.
    """
    record = {
        "sample_by": reading.sample_by,
        "read_by": reading.documents,
        "eos_after_each_document": eos_after_each_document,
    }
    if "line" in reading.read_by and reading.keep_linebreaks is not None:
        record["keep_linebreaks"] = reading.keep_linebreaks
    return record


def recorded_text_reading(model_name_or_path: str | os.PathLike) -> dict[str, Any] | None:
    """The `text_reading` that a local model folder's `training_data.json` records, or None.

    A Trainer checkpoint (`.../checkpoint-500`) has no record of its own: its run's folder, when it holds one, speaks
    for it. None for a Hub id, a folder trained on rows rather than plain text, or one written before the record
    existed (or by another library).
    """
    folder = Path(model_name_or_path)
    candidates = [folder]
    if folder.name.startswith("checkpoint-"):
        candidates.append(folder.parent)
    for candidate in candidates:
        path = candidate / TRAINING_DATA_NAME
        if not path.is_file():
            continue
        try:
            facts = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # unreadable: as good as no record
        reading = facts.get("text_reading") if isinstance(facts, dict) else None
        if isinstance(reading, dict) and isinstance(reading.get("sample_by"), str):
            return reading
        return None
    return None


def describe_training_data(
    data_args,
    train_dataset=None,
    text_columns: Sequence[str] = ("text",),
    text_reading: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The facts about a run's data that its model card states (see the module docstring).

    Args:
        data_args: The run's `hf_textgen.data.DataArguments`.
        train_dataset: The raw training split (a `datasets.Dataset` or `IterableDataset`), for the languages and
            the prompt; None records the sources alone.
        text_columns: The columns holding text; the first one gives the prompt (`prompt` for prompt/completion
            pairs, `source` for seq2seq).
        text_reading: How plain training text was cut into documents (`text_reading_record`); None when the
            training data was rows (json, csv, a dataset with several columns) or the task reads no plain text.

    Returns:
        A JSON-ready dict: `dataset_name`, `dataset_config_name` or `train_files` / `validation_files` (name and
        bytes), `bundled_corpus`, `text_reading`, `num_documents`, `languages` and `prompt`.
    """
    from hf_textgen.data.loading import bundled_corpus_files, expand_data_files

    facts: dict[str, Any] = {}
    if data_args.dataset_name:
        name = data_args.dataset_name
        if os.path.isdir(name):
            folder = Path(name)
            facts["dataset_folder"] = folder.resolve().name
            files = sorted(path for path in folder.rglob("*") if path.is_file() and not path.name.startswith("."))
            facts["train_files"] = [_file_entry(str(path)) for path in files]
        else:
            facts["dataset_name"] = name
            if data_args.dataset_config_name:
                facts["dataset_config_name"] = data_args.dataset_config_name
    else:
        bundled = bundled_corpus_files()
        train_files = expand_data_files(data_args.train_file) if data_args.train_file else [bundled["train"]]
        facts["bundled_corpus"] = not data_args.train_file
        facts["train_files"] = [_file_entry(path) for path in train_files]
        if data_args.validation_file:
            validation = expand_data_files(data_args.validation_file, "--validation_file")
            facts["validation_files"] = [_file_entry(path) for path in validation]
        elif not data_args.train_file:
            facts["validation_files"] = [_file_entry(bundled["validation"])]
        else:  # part of the training text is held out (documents or packed blocks)
            facts["validation_split_percentage"] = data_args.validation_split_percentage
    if data_args.max_train_samples is not None:
        facts["max_train_samples"] = data_args.max_train_samples
    if text_reading is not None:
        facts["text_reading"] = text_reading
    if train_dataset is not None:
        if not isinstance(train_dataset, IterableDataset):  # a stream's length is unknown
            facts["num_documents"] = len(train_dataset)
        rows = _sample_rows(train_dataset, text_columns)
        facts["languages"] = detect_languages(text for row in rows for text in row)
        prompt = prompt_from(row[0] for row in rows)  # the first row's first: where the training text starts
        if prompt is not None:
            facts["prompt"] = prompt
    return facts


def training_arguments_record(training_args) -> dict[str, Any]:
    """The hyperparameters of `training_args` as set, JSON-ready (enums as their values), plus `world_size`."""
    record: dict[str, Any] = {}
    for name in RECORDED_TRAINING_ARGS:
        value = getattr(training_args, name, None)
        value = getattr(value, "value", value)  # IntervalStrategy.STEPS -> "steps"
        if value is None or isinstance(value, bool | int | float | str):
            record[name] = value
        else:
            record[name] = str(value)
    record["world_size"] = getattr(training_args, "world_size", 1)
    return record


def save_training_facts(
    output_dir: str | os.PathLike,
    training_args,
    data_args=None,
    train_dataset=None,
    text_columns: Sequence[str] = ("text",),
    text_reading: dict[str, Any] | None = None,
) -> None:
    """Write `training_args.json` and (given `data_args`) `training_data.json` into the finished folder."""
    output_dir = Path(output_dir)
    record = training_arguments_record(training_args)
    (output_dir / TRAINING_ARGS_NAME).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    if data_args is not None:
        facts = describe_training_data(data_args, train_dataset, text_columns, text_reading)
        text = json.dumps(facts, indent=2, ensure_ascii=False) + "\n"
        (output_dir / TRAINING_DATA_NAME).write_text(text, encoding="utf-8")
