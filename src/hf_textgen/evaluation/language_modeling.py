"""Perplexity of a language model on a text: sliding-window NLL for causal LMs, teacher-forced NLL for seq2seq.

The sliding window follows the transformers perplexity guide: windows of `block_size` tokens start every `stride`
tokens, and each window scores only the tokens the previous window did not, so every token (except the very first
one, which has nothing to be predicted from) is scored exactly once, with up to `block_size - 1` tokens of context.
`stride == block_size` gives plain non-overlapping chunks (fast, less context per token); a smaller stride gives
each token more context at the cost of `block_size / stride` times the compute.

The per-window NLL sums go through the package's `perplexity` metric module, so the arithmetic (exp of total NLL
over tokens, words or characters) lives in one place.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hf_textgen.evaluation import load_metric

IGNORE_INDEX = -100


@dataclass(frozen=True)
class Window:
    """One forward pass of the sliding window: tokens `[begin, end)` are fed, tokens `[score_from, end)` scored."""

    begin: int
    end: int
    score_from: int


def sliding_windows(num_tokens: int, block_size: int, stride: int | None = None) -> list[Window]:
    """The windows that score every token of a `num_tokens`-long sequence once (all but the first token).

    Args:
        num_tokens: Length of the token sequence.
        block_size: Tokens fed to the model per window (its context length at most).
        stride: Distance between window starts; `None` means `block_size` (non-overlapping windows).

    Returns:
        The windows in order; empty when fewer than two tokens exist (nothing can be predicted).

    Raises:
        ValueError: If `block_size < 2`, or `stride` is not in `[1, block_size]` (a larger stride would skip
            tokens).
    """
    stride = block_size if stride is None else stride
    if block_size < 2:
        raise ValueError(f"block_size must be at least 2 tokens (one to predict from, one to score), got {block_size}")
    if not 1 <= stride <= block_size:
        raise ValueError(f"stride must be between 1 and block_size ({block_size}), got {stride}")
    windows = []
    previous_end = 0
    for begin in range(0, num_tokens, stride):
        end = min(begin + block_size, num_tokens)
        # A window's first token has no context inside the window, so it is never a target.
        score_from = max(previous_end, begin + 1)
        if score_from < end:
            windows.append(Window(begin, end, score_from))
        previous_end = end
        if end == num_tokens:
            break
    return windows


def _batches(windows: Sequence[Window], batch_size: int) -> Iterator[list[Window]]:
    # Only windows of equal length share a batch, so no padding (and no attention mask) is ever needed: all windows
    # are block_size long except possibly the last one.
    batch: list[Window] = []
    for window in windows:
        if batch and (len(batch) == batch_size or window.end - window.begin != batch[0].end - batch[0].begin):
            yield batch
            batch = []
        batch.append(window)
    if batch:
        yield batch


def _autocast(device: torch.device, bf16: bool):
    if not bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@torch.no_grad()
def sliding_window_nll(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    block_size: int,
    stride: int | None = None,
    batch_size: int = 8,
    bf16: bool = False,
    progress: bool = False,
) -> tuple[list[float], list[int]]:
    """Summed negative log-likelihood of a token sequence under a causal LM, window by window.

    Args:
        model: A causal language model (its forward takes `input_ids` and returns `logits`).
        input_ids: The whole token sequence, shape `(num_tokens,)`.
        block_size: Tokens per window; at most the model's context length.
        stride: Distance between window starts (see `sliding_windows`).
        batch_size: Windows per forward pass.
        bf16: Run the forward pass under bfloat16 autocast (the log-softmax is still computed in float32).
        progress: Show a progress bar.

    Returns:
        `(nll, num_tokens)`: per window, the summed NLL (natural log) of its scored tokens and how many it scored.
    """
    if input_ids.dim() != 1:
        raise ValueError(f"input_ids must be one sequence of shape (num_tokens,), got shape {tuple(input_ids.shape)}")
    device = model.device
    windows = sliding_windows(len(input_ids), block_size, stride)
    nll: list[float] = []
    counts: list[int] = []
    model.eval()
    with tqdm(total=len(windows), desc="perplexity", unit="window", disable=not progress) as bar:
        for batch in _batches(windows, batch_size):
            batch_ids = torch.stack([input_ids[w.begin : w.end] for w in batch]).to(device)  # (B, T)
            labels = batch_ids[:, 1:].clone()  # (B, T-1): position t predicts token t+1
            for row, window in enumerate(batch):
                # Targets are tokens begin+1 .. end-1; mask those an earlier window already scored.
                labels[row, : window.score_from - window.begin - 1] = IGNORE_INDEX
            with _autocast(device, bf16):
                logits = model(input_ids=batch_ids, use_cache=False).logits[:, :-1]  # (B, T-1, V)
            token_nll = F.cross_entropy(
                logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
            )  # (B, T-1)
            for row in range(len(batch)):
                nll.append(token_nll[row].sum().item())
                counts.append(int((labels[row] != IGNORE_INDEX).sum()))
            bar.update(len(batch))
    return nll, counts


def _join_documents(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> list[int]:
    # Each document is followed by EOS, exactly as the training data pipeline (`tokenize_datasets`) packs them, so
    # the model is scored on the same kind of token stream it was trained on.
    # verbose=False: documents longer than the model's context are expected here (the windows cut them).
    token_lists = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    return [token for tokens in token_lists for token in tokens + eos]


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
    """Perplexity of a causal LM on documents joined by EOS: per token, per word and per character.

    Args:
        model: A causal language model.
        tokenizer: Its tokenizer.
        texts: The documents (e.g. paragraphs of a validation file).
        block_size: Tokens per window; at most the model's context length.
        stride: Distance between window starts; `None` means `block_size`.
        batch_size: Windows per forward pass.
        bf16: bfloat16 autocast for the forward pass.
        progress: Show a progress bar.

    Returns:
        `eval_loss` (NLL per token), `perplexity`, `num_tokens` (scored), `word_perplexity` (exp of total NLL per
        whitespace-separated word), `num_words`, `loss_per_character` (total NLL per character, each document's EOS
        counting as the one separator character it stands for), `num_characters`, `block_size`, `stride`.

    Raises:
        ValueError: If the text has fewer than two tokens or no words.
    """
    ids = _join_documents(tokenizer, texts)
    if len(ids) < 2:
        raise ValueError(f"the evaluation text has {len(ids)} token(s); at least 2 are needed to score one")
    num_words = sum(len(text.split()) for text in texts)
    if num_words == 0:
        raise ValueError("the evaluation text holds no words (only whitespace)")
    num_characters = sum(len(text) for text in texts) + (len(texts) if tokenizer.eos_token_id is not None else 0)
    stride = block_size if stride is None else stride
    nll, counts = sliding_window_nll(
        model, torch.tensor(ids, dtype=torch.long), block_size, stride, batch_size, bf16, progress
    )
    metric = load_metric("perplexity")
    results = metric.compute(nll=nll, num_tokens=counts, num_words=num_words, num_characters=num_characters)
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
        `eval_loss` (NLL per target token), `perplexity`, `num_tokens`, `word_perplexity` (per whitespace-separated
        target word) and `num_words`.

    Raises:
        ValueError: If there are no pairs, or sources and targets differ in number.
    """
    if len(sources) != len(targets):
        raise ValueError(f"{len(sources)} sources but {len(targets)} targets")
    if not sources:
        raise ValueError("no (source, target) pairs to evaluate")
    device = model.device
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    nll: list[float] = []
    counts: list[int] = []
    model.eval()
    for start in tqdm(range(0, len(sources), batch_size), desc="perplexity", unit="batch", disable=not progress):
        batch_sources = list(sources[start : start + batch_size])
        batch_targets = list(targets[start : start + batch_size])
        encoded = tokenizer(
            batch_sources, max_length=max_source_length, truncation=True, padding=True, return_tensors="pt"
        ).to(device)
        target_ids = tokenizer(batch_targets, add_special_tokens=False)["input_ids"]
        target_ids = [ids[: max_target_length - len(eos)] + eos for ids in target_ids]
        width = max(len(ids) for ids in target_ids)
        labels = torch.full((len(target_ids), width), IGNORE_INDEX, dtype=torch.long)  # (B, T)
        for row, ids in enumerate(target_ids):
            labels[row, : len(ids)] = torch.tensor(ids)
        labels = labels.to(device)
        decoder_input_ids = model.prepare_decoder_input_ids_from_labels(labels=labels.masked_fill(labels < 0, pad_id))
        with _autocast(device, bf16):
            logits = model(
                input_ids=encoded["input_ids"],
                attention_mask=encoded["attention_mask"],
                decoder_input_ids=decoder_input_ids,
            ).logits  # (B, T, V)
        token_nll = F.cross_entropy(
            logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none"
        )  # (B, T)
        nll.append(token_nll.sum().item())
        counts.append(int((labels != IGNORE_INDEX).sum()))
    num_words = max(1, sum(len(text.split()) for text in targets))
    metric = load_metric("perplexity")
    return metric.compute(nll=nll, num_tokens=counts, num_words=num_words)
