"""Tokenize raw text and pack it into fixed-size blocks for causal-LM training, as transformers' run_clm.py does.

Each document ("text" row) is tokenized without special tokens and followed by the tokenizer's EOS, so the model
learns where documents end. The token streams of a `map` batch (1,000 documents) are then concatenated and cut
into blocks of exactly `block_size` tokens; the remainder of each batch is dropped (run_clm.py does the same).

Both steps go through `datasets.map`, whose fingerprint cache makes a second run with the same data, tokenizer and
block size load the result from disk instead of tokenizing again (unless `overwrite_cache`).
"""

from __future__ import annotations

import logging
from itertools import chain

from datasets import Dataset, DatasetDict, IterableDataset, IterableDatasetDict

from hf_textgen.data.arguments import MIN_BLOCK_SIZE, DataArguments
from hf_textgen.data.loading import column_names, is_validation_index, num_validation_items
from hf_textgen.errors import UserError

logger = logging.getLogger(__name__)

# Tokens per training block when --block_size is not given (pretrain, finetune --task causal_lm).
DEFAULT_BLOCK_SIZE = 256
# The longest default context where a longer one is possible: evaluate's window on a model's whole context, and
# `tokenize_and_group` alone on a tokenizer's `model_max_length`. Long enough that the per-token loss no longer moves
# with it, short enough that one window's logits stay small in memory.
MAX_DEFAULT_CONTEXT = 1024


def _map_kwargs(dataset, data_args: DataArguments | None, description: str) -> dict:
    """Cache and worker options for `map`; streaming datasets take none of them."""
    if isinstance(dataset, IterableDataset):
        return {}
    return {
        "num_proc": data_args.preprocessing_num_workers if data_args else None,
        "load_from_cache_file": not (data_args and data_args.overwrite_cache),
        "desc": description,
    }


def tokenize_datasets(
    raw_datasets: DatasetDict | IterableDatasetDict,
    tokenizer,
    data_args: DataArguments | None = None,
    append_eos: bool = True,
    text_column_name: str = "text",
) -> DatasetDict | IterableDatasetDict:
    """Tokenize the text column of every split, each document followed by EOS; all other columns are removed.

    Args:
        raw_datasets: Splits with a text column (as returned by `load_raw_datasets`).
        tokenizer: A transformers tokenizer; it must have an `eos_token` when `append_eos` is set.
        data_args: Supplies `preprocessing_num_workers` and `overwrite_cache`; optional.
        append_eos: Append `tokenizer.eos_token_id` to each document.
        text_column_name: The column to tokenize.

    Returns:
        The same splits with a single `input_ids` column (lists of token ids of varying length).
    """
    eos_token_id = tokenizer.eos_token_id
    if append_eos and eos_token_id is None:
        raise UserError("the tokenizer has no eos_token to separate documents with; set one or use another tokenizer")

    def tokenize(batch: dict) -> dict:
        encoded = tokenizer(batch[text_column_name], add_special_tokens=False, verbose=False)["input_ids"]
        if append_eos:
            encoded = [ids + [eos_token_id] for ids in encoded]
        return {"input_ids": encoded}

    tokenized = {}
    for split, dataset in raw_datasets.items():
        tokenized[split] = dataset.map(
            tokenize,
            batched=True,
            remove_columns=column_names(dataset),
            **_map_kwargs(dataset, data_args, f"Tokenizing {split}"),
        )
    return type(raw_datasets)(tokenized)


def group_texts(examples: dict, block_size: int) -> dict:
    """Concatenate a batch of token lists and cut it into blocks of exactly `block_size` (remainder dropped).

    Returns `input_ids`, `attention_mask` (all ones: packed blocks have no padding) and `labels` (a copy of
    `input_ids`; the model shifts them).
    """
    concatenated = list(chain.from_iterable(examples["input_ids"]))
    total_length = len(concatenated) // block_size * block_size
    input_ids = [concatenated[start : start + block_size] for start in range(0, total_length, block_size)]
    return {
        "input_ids": input_ids,
        "attention_mask": [[1] * block_size for _ in input_ids],
        "labels": [list(ids) for ids in input_ids],
    }


def resolve_block_size(requested: int | None, limit: int | None = None, default: int = DEFAULT_BLOCK_SIZE) -> int:
    """The one rule for `--block_size` (pretrain, finetune, evaluate and `tokenize_and_group`).

    Args:
        requested: `--block_size`, or None for the default.
        limit: How many positions the model takes (`hf_textgen.generation.max_positions`); None for no limit.
        default: The command's default, capped at `limit`.

    Returns:
        The block size in tokens.

    Raises:
        UserError: A block shorter than 2 tokens (one to predict from, one to score) or beyond `limit`.
    """
    if requested is None:
        return min(default, limit) if limit is not None else default
    if requested < MIN_BLOCK_SIZE:
        raise UserError(f"--block_size {requested} is too small; use at least {MIN_BLOCK_SIZE} tokens")
    if limit is not None and requested > limit:
        raise UserError(
            f"--block_size {requested} is beyond the model's context ({limit} positions, "
            "max_position_embeddings); lower --block_size or build a model with more positions"
        )
    return requested


def tokenize_and_group(
    raw_datasets: DatasetDict | IterableDatasetDict,
    tokenizer,
    block_size: int | None = None,
    data_args: DataArguments | None = None,
) -> DatasetDict | IterableDatasetDict:
    """Tokenize documents (EOS after each) and pack them into `block_size` blocks for causal-LM training.

    Args:
        raw_datasets: "train" / "validation" splits with a "text" column (from `load_raw_datasets`). Without
            "validation", the packed training blocks are split (see `split_blocks`).
        tokenizer: A transformers tokenizer with an `eos_token`.
        block_size: Tokens per block, as `resolve_block_size` gave it; `None` resolves `data_args.block_size`
            against the tokenizer's `model_max_length`, with `min(model_max_length, 1024)` as the default.
        data_args: `preprocessing_num_workers`, `overwrite_cache`, `max_train_samples` and `max_eval_samples`
            (the last two keep the first N blocks, as in run_clm.py).

    Returns:
        The splits with `input_ids`, `attention_mask` and `labels`, every row exactly `block_size` long.

    Raises:
        UserError: No EOS token, a split with fewer tokens than one block (a stream is checked by reading up to its
            first block), or fewer than two training blocks to split a validation set from.
    """
    if block_size is None:
        # The tokenizer's model_max_length is often a placeholder (1e30): a default, not a limit to enforce.
        model_max_length = getattr(tokenizer, "model_max_length", None) or MAX_DEFAULT_CONTEXT
        requested = data_args.block_size if data_args is not None else None
        block_size = resolve_block_size(requested, default=min(model_max_length, MAX_DEFAULT_CONTEXT))
    tokenized = tokenize_datasets(raw_datasets, tokenizer, data_args)

    grouped = {}
    for split, dataset in tokenized.items():
        grouped[split] = dataset.map(
            group_texts,
            batched=True,
            fn_kwargs={"block_size": block_size},
            remove_columns=column_names(dataset),
            **_map_kwargs(dataset, data_args, f"Grouping {split} in blocks of {block_size}"),
        )
    split_here = "validation" not in grouped
    if split_here:
        percentage = data_args.validation_split_percentage if data_args is not None else 5
        grouped["train"], grouped["validation"] = split_blocks(grouped["train"], percentage, block_size)
    for split, dataset in grouped.items():
        # A stream is checked by reading up to its first block: cheap, and it saves a run that would train for
        # hours and then fail in its first evaluation.
        empty = len(dataset) == 0 if isinstance(dataset, Dataset) else next(iter(dataset), None) is None
        if empty and split == "train" and split_here:
            # A stream whose one block went to validation (map-style data is refused in `split_blocks`).
            raise UserError(
                f"the training text makes fewer than 2 blocks of {block_size} tokens: too few to split off a "
                "validation set; give more text, a smaller --block_size or a --validation_file"
            )
        if empty:
            raise UserError(
                f"the {split} text is shorter than one block of {block_size} tokens; give more text or a smaller "
                "--block_size"
            )
        limit = None
        if data_args is not None:
            limit = data_args.max_train_samples if split == "train" else data_args.max_eval_samples
        if limit is not None:
            dataset = (
                dataset.take(limit)
                if isinstance(dataset, IterableDataset)
                else dataset.select(range(min(limit, len(dataset))))
            )
        grouped[split] = dataset
    return type(tokenized)(grouped)


def split_blocks(blocks: Dataset | IterableDataset, percentage: int, block_size: int) -> tuple:
    """Deterministic (train, validation) blocks: the first `percentage`% (at least one, never all), or in a stream
    block `i` when `i * percentage % 100 < percentage` (block 0 does, block 1 does not).

    Raises:
        UserError: Fewer than two blocks (map-style data).
    """
    if isinstance(blocks, IterableDataset):
        validation = blocks.filter(lambda _, index: is_validation_index(index, percentage), with_indices=True)
        train = blocks.filter(lambda _, index: not is_validation_index(index, percentage), with_indices=True)
        return train, validation
    if len(blocks) < 2:
        raise UserError(
            f"the training text makes {len(blocks)} block(s) of {block_size} tokens: too few to split off a "
            "validation set (2 are needed); give more text, a smaller --block_size or a --validation_file"
        )
    num_validation = num_validation_items(len(blocks), percentage)
    return blocks.select(range(num_validation, len(blocks))), blocks.select(range(num_validation))
