"""(source, target) pairs for encoder-decoder models: the one loader `finetune --task seq2seq` and `evaluate` share.

The pairs are json / jsonl / csv / parquet rows (or a Hub dataset) with a source and a target column, read through
`load_raw_datasets` so every file rule (UTF-8, globs, formats, the Hub) is the training text's.
"""

from __future__ import annotations

import dataclasses
import logging

from datasets import DatasetDict

from hf_textgen.data.arguments import DataArguments
from hf_textgen.data.loading import load_raw_datasets
from hf_textgen.errors import UserError

logger = logging.getLogger(__name__)

# The column names of the returned pairs, whatever the user's columns are called.
SOURCE, TARGET = "source", "target"


def load_pairs(
    data_args: DataArguments,
    source_column: str = SOURCE,
    target_column: str = TARGET,
    cache_dir: str | None = None,
    evaluation_only: bool = False,
    extra_splits: tuple[str, ...] = (),
) -> DatasetDict:
    """Load "train" / "validation" (and `extra_splits`) pairs with string columns "source" and "target".

    Rows with an empty or missing source or target are dropped (with a warning).

    Args:
        data_args: `train_file` / `validation_file` / `dataset_name` (+ `dataset_config_name`,
            `validation_split_percentage`).
        source_column: The user's input text column.
        target_column: The user's output text column.
        cache_dir: The datasets cache folder.
        evaluation_only: Only evaluation data is needed: a `validation_file` alone is enough (it then serves as
            both splits).
        extra_splits: Other splits of a Hub dataset or data folder to keep (e.g. `("test",)`).

    Raises:
        UserError: No data named, streaming, a missing / empty / unreadable file, a missing column, or no pair left.
    """
    if evaluation_only and data_args.validation_file and not data_args.train_file:
        data_args = dataclasses.replace(data_args, train_file=[data_args.validation_file])
    if not data_args.train_file and not data_args.dataset_name:
        flag = "--validation_file" if evaluation_only else "--train_file"
        raise UserError(
            f"an encoder-decoder model needs (source, target) pairs, and the bundled corpus has none: pass {flag} "
            "(json, jsonl or csv) or --dataset_name"
        )
    if data_args.streaming:
        raise UserError("(source, target) pairs cannot be streamed; drop --streaming")
    try:
        # The shared loader finds its one text column: point it at the source, then rename it back.
        raw = load_raw_datasets(
            dataclasses.replace(data_args, text_column_name=source_column), cache_dir, extra_splits=extra_splits
        )
    except UserError as error:
        message = str(error).replace("--text_column_name", "--source_column")
        if evaluation_only:  # the validation file stands in for the training data
            message = message.replace("the train data", "the --validation_file data")
        raise UserError(message) from None
    pairs = {}
    for split, dataset in raw.items():
        if target_column not in dataset.column_names:
            if split == "train" and "text" in dataset.column_names and len(dataset.column_names) == 1:
                hint = "plain text has no columns: give json, jsonl or csv rows with a source and a target"
            else:
                hint = f"columns: {', '.join(c if c != 'text' else source_column for c in dataset.column_names)}"
            raise UserError(f"the {split} data has no target column {target_column!r} ({hint}); fix --target_column")
        dataset = dataset.select_columns(["text", target_column]).rename_column("text", SOURCE)
        if target_column != TARGET:
            dataset = dataset.rename_column(target_column, TARGET)
        before = len(dataset)
        dataset = dataset.filter(_has_text_on_both_sides, desc="Dropping pairs with an empty source or target")
        if len(dataset) < before:
            logger.warning("%s: %d pair(s) without source or target text dropped", split, before - len(dataset))
        if len(dataset) == 0:
            raise UserError(f"the {split} data holds no (source, target) pair with text on both sides")
        pairs[split] = dataset
    return DatasetDict(pairs)


def _has_text_on_both_sides(row: dict) -> bool:
    return all(isinstance(row[column], str) and bool(row[column].strip()) for column in (SOURCE, TARGET))
