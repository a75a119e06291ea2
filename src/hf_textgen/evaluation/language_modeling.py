"""Perplexity of a language model on a text: rolling-window NLL for causal LMs, teacher-forced NLL for seq2seq.

A causal LM scores each document on its own, as lm-evaluation-harness's `loglikelihood_rolling` does: the document's
tokens follow one prefix token (EOS, which precedes every document in our packed training data, so the first token
is scored from the context the model was trained with), and windows of at most `block_size` input tokens predict
`stride` new tokens each. Every token of the document is scored exactly once; the windows after the first keep the
preceding `block_size - stride` tokens as context (with `stride == block_size`, one token; a window near the end of
a document reaches back to a full `block_size`). `stride == block_size` is exactly lm-eval's windowing; a smaller
stride gives each token more context at the cost of `block_size / stride` times the compute.

The per-document NLL sums go through the package's `perplexity` metric module, so the arithmetic (exp of total NLL
over tokens, words, bytes or characters) lives in one place; words and bytes are counted as lm-eval's `wikitext`
task counts them (`hf_textgen.evaluation.text_units`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import DataCollatorForSeq2Seq, PreTrainedModel, PreTrainedTokenizerBase

from hf_textgen.evaluation import load_metric
from hf_textgen.evaluation.text_units import TextUnits

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Window:
    """One forward pass: tokens `[begin, end)` are fed and predict tokens `[begin + 1, end + 1)`; those from
    `score_from` on are scored (the earlier ones only give context)."""

    begin: int
    end: int
    score_from: int


def sliding_windows(num_tokens: int, block_size: int, stride: int | None = None) -> list[Window]:
    """The windows that score every token of a `num_tokens`-long sequence but the first (the prefix), each once.

    Args:
        num_tokens: Length of the token sequence, prefix token included.
        block_size: Tokens fed to the model per window (its context length at most).
        stride: New tokens scored per window; `None` means `block_size` (lm-eval's disjoint windows).

    Returns:
        The windows in order; empty when fewer than two tokens exist (nothing can be predicted).

    Raises:
        ValueError: If `block_size < 1`, or `stride` is not in `[1, block_size]` (a larger stride would skip
            tokens).
    """
    stride = block_size if stride is None else stride
    if block_size < 1:
        raise ValueError(f"block_size must be at least 1 token, got {block_size}")
    if not 1 <= stride <= block_size:
        raise ValueError(f"stride must be between 1 and block_size ({block_size}), got {stride}")
    windows = []
    for first in range(1, num_tokens, stride):
        last = min(first + stride, num_tokens)  # targets [first, last)
        # The inputs end just before the last target and reach back as far as the block allows.
        windows.append(Window(begin=max(0, last - 1 - block_size), end=last - 1, score_from=first))
    return windows


def _autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def rolling_nll(
    model: PreTrainedModel,
    sequences: Sequence[Sequence[int]],
    block_size: int,
    stride: int | None = None,
    batch_size: int = 8,
    bf16: bool = False,
    progress: bool = False,
    pad_token_id: int = 0,
) -> tuple[list[float], list[int]]:
    """Summed negative log-likelihood of each token sequence under a causal LM, scored in rolling windows.

    Windows of all sequences are batched together, longest first, right-padded: in a causal model a real token
    never attends to the padding after it, so no attention mask is needed and padding changes no score.

    Args:
        model: A causal language model (its forward takes `input_ids` and returns `logits`).
        sequences: Token sequences, each starting with its prefix token (which is not scored).
        block_size: Tokens per window; at most the model's context length.
        stride: New tokens scored per window (see `sliding_windows`).
        batch_size: Windows per forward pass.
        bf16: Run the forward pass under bfloat16 autocast (the log-softmax is still computed in float32).
        progress: Show a progress bar.
        pad_token_id: Any valid id, to fill the rows of shorter windows.

    Returns:
        `(nll, num_tokens)`: per sequence, the summed NLL (natural log) of its scored tokens and how many there are.
    """
    device = model.device
    items = [
        (index, window)
        for index, ids in enumerate(sequences)
        for window in sliding_windows(len(ids), block_size, stride)
    ]
    items.sort(key=lambda item: item[1].end - item[1].begin, reverse=True)
    nll = [0.0] * len(sequences)
    counts = [0] * len(sequences)
    model.eval()
    with tqdm(total=len(items), desc="perplexity", unit="window", disable=not progress) as bar:
        for start in range(0, len(items), batch_size):
            batch = items[start : start + batch_size]
            width = batch[0][1].end - batch[0][1].begin
            input_ids = torch.full((len(batch), width), pad_token_id, dtype=torch.long)  # (B, T)
            labels = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)  # (B, T): position t predicts t+1
            for row, (index, window) in enumerate(batch):
                ids = torch.as_tensor(sequences[index][window.begin : window.end + 1], dtype=torch.long)
                length = window.end - window.begin
                input_ids[row, :length] = ids[:-1]
                skip = window.score_from - window.begin - 1  # targets only there for context
                labels[row, skip:length] = ids[1:][skip:]
            with _autocast(device, bf16):
                logits = model(input_ids=input_ids.to(device), use_cache=False).logits  # (B, T, V)
            token_nll = F.cross_entropy(
                logits.float().transpose(1, 2), labels.to(device), ignore_index=IGNORE_INDEX, reduction="none"
            )  # (B, T)
            for row, (index, _) in enumerate(batch):
                nll[index] += token_nll[row].sum().item()
                counts[index] += int((labels[row] != IGNORE_INDEX).sum())
            bar.update(len(batch))
    return nll, counts


def sliding_window_nll(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    block_size: int,
    stride: int | None = None,
    batch_size: int = 8,
    bf16: bool = False,
    progress: bool = False,
) -> tuple[float, int]:
    """Summed NLL of one token sequence of shape `(num_tokens,)` (its first token is the unscored prefix).

    Returns:
        `(nll, num_tokens)`: the summed NLL (natural log) and the number of scored tokens (`num_tokens - 1`).
    """
    if input_ids.dim() != 1:
        raise ValueError(f"input_ids must be one sequence of shape (num_tokens,), got shape {tuple(input_ids.shape)}")
    (nll,), (count,) = rolling_nll(model, [input_ids.tolist()], block_size, stride, batch_size, bf16, progress)
    return nll, count


def evaluate_causal_lm(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    block_size: int,
    stride: int | None = None,
    batch_size: int = 8,
    bf16: bool = False,
    progress: bool = False,
) -> dict[str, float | int]:
    """Perplexity of a causal LM on documents, per token, word, byte and character, as lm-evaluation-harness scores.

    Each document is scored on its own after one EOS (the token that precedes every document in training); the
    EOS is the prefix, not a target, and no EOS is scored after the document (lm-eval scores none either).

    Args:
        model: A causal language model.
        tokenizer: Its tokenizer (with an EOS token; without one, each document's first token is the prefix).
        texts: The documents (e.g. paragraphs, or whole WikiText articles with `--sample_by article`).
        block_size: Tokens per window; at most the model's context length.
        stride: New tokens scored per window; `None` means `block_size`.
        batch_size: Windows per forward pass.
        bf16: bfloat16 autocast for the forward pass.
        progress: Show a progress bar.

    Returns:
        `eval_loss` (NLL per token), `perplexity`, `num_tokens` (scored); `word_perplexity` and `num_words` (left
        out, with a logged note, for text in scripts without spaces); `byte_perplexity`, `bits_per_byte`,
        `num_bytes`; `character_perplexity`, `loss_per_character`, `num_characters`; `block_size`, `stride`.

    Raises:
        ValueError: If the text has no token to score.
    """
    texts = [text for text in texts if text]
    token_lists = tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]
    prefix = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    sequences = [prefix + ids for ids in token_lists]
    if sum(max(0, len(ids) - 1) for ids in sequences) == 0:
        raise ValueError("the evaluation text has no token to score; give more text")
    stride = block_size if stride is None else stride
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll, counts = rolling_nll(model, sequences, block_size, stride, batch_size, bf16, progress, pad_token_id)
    units = TextUnits.of(texts, num_tokens=sum(counts))
    if units.word_note() is not None:
        logger.warning(units.word_note())
    metric = load_metric("perplexity")
    results = metric.compute(
        nll=nll,
        num_tokens=counts,
        num_words=units.num_words,
        num_bytes=units.num_bytes,
        num_characters=units.num_characters,
    )
    return {**results, "block_size": block_size, "stride": stride}


@torch.no_grad()
def evaluate_seq2seq(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    targets: Sequence[str],
    max_source_length: int,
    max_target_length: int,
    batch_size: int = 8,
    bf16: bool = False,
    progress: bool = False,
) -> dict[str, float | int]:
    """Teacher-forced perplexity of an encoder-decoder model on `(source, target)` pairs, scored on target tokens.

    Each target is tokenized, truncated to `max_target_length - 1` tokens and closed with EOS (the EOS is scored:
    knowing where to stop is part of the task); the source is truncated to `max_source_length` tokens.

    Returns:
        `eval_loss` (NLL per target token), `perplexity`, `num_tokens`; `word_perplexity` (per whitespace-separated
        target word) and `num_words` (left out, with a logged note, for targets in scripts without spaces);
        `byte_perplexity`, `bits_per_byte` and `num_bytes` (per UTF-8 byte of the targets; the closing EOS's loss
        counts, as it does in `eval_loss`).

    Raises:
        ValueError: If there are no pairs, or sources and targets differ in number.
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    if not sources:
        raise ValueError("no (source, target) pairs to evaluate")
    device = model.device
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    # The training collator: pads sources and labels (with -100) and builds the decoder inputs from the labels.
    collator = DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE_INDEX, return_tensors="pt")
    nll: list[float] = []
    counts: list[int] = []
    model.eval()
    for start in tqdm(range(0, len(sources), batch_size), desc="perplexity", unit="batch", disable=not progress):
        encoded = tokenizer(list(sources[start : start + batch_size]), max_length=max_source_length, truncation=True)
        target_ids = tokenizer(list(targets[start : start + batch_size]), add_special_tokens=False)["input_ids"]
        features = [
            {"input_ids": ids, "attention_mask": mask, "labels": target[: max_target_length - len(eos)] + eos}
            for ids, mask, target in zip(encoded["input_ids"], encoded["attention_mask"], target_ids)
        ]
        batch = collator(features).to(device)
        labels = batch["labels"]  # (B, T)
        with _autocast(device, bf16):
            logits = model(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                decoder_input_ids=batch["decoder_input_ids"],
            ).logits  # (B, T, V)
        token_nll = F.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (B, T)
        nll.append(token_nll.sum().item())
        counts.append(int((labels != IGNORE_INDEX).sum()))
    units = TextUnits.of(list(targets), num_tokens=sum(counts))
    if units.word_note() is not None:
        logger.warning(units.word_note())
    num_words = None if units.num_words is None else max(1, sum(len(text.split()) for text in targets))
    metric = load_metric("perplexity")
    return metric.compute(nll=nll, num_tokens=counts, num_words=num_words, num_bytes=units.num_bytes)
