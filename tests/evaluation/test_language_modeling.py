"""Sliding-window perplexity against independent computations on tiny models."""

import math

import pytest
import torch
from torch.nn import functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from hf_textgen.evaluation.language_modeling import Window, sliding_window_nll, sliding_windows

VOCAB_SIZE = 64


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module")
def token_ids():
    return torch.randint(0, VOCAB_SIZE, (57,), generator=torch.Generator().manual_seed(1))


def test_windows_score_every_token_but_the_first_once():
    for num_tokens, block_size, stride in [(57, 16, 16), (57, 16, 5), (57, 16, 1), (16, 16, 4), (3, 16, 8)]:
        scored = [t for w in sliding_windows(num_tokens, block_size, stride) for t in range(w.score_from, w.end)]
        if stride == block_size:
            # Non-overlapping chunks: each chunk's first token has no context and is not scored.
            expected = [t for t in range(num_tokens) if t % block_size]
        else:
            expected = list(range(1, num_tokens))
        assert scored == expected, (num_tokens, block_size, stride)


def test_windows_layout_and_bad_values():
    assert sliding_windows(10, 4, 2) == [Window(0, 4, 1), Window(2, 6, 4), Window(4, 8, 6), Window(6, 10, 8)]
    assert sliding_windows(1, 4) == []
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(10, 4, 5)
    with pytest.raises(ValueError, match="block_size"):
        sliding_windows(10, 1)


def test_one_window_equals_the_models_own_loss(llama, token_ids):
    nll, counts = sliding_window_nll(llama, token_ids, block_size=64)
    assert counts == [len(token_ids) - 1]
    with torch.no_grad():
        loss = llama(input_ids=token_ids[None], labels=token_ids[None]).loss
    assert sum(nll) / sum(counts) == pytest.approx(loss.item(), rel=1e-5)


def test_stride_equal_to_block_size_equals_manual_chunking(llama, token_ids):
    block_size = 16
    nll, counts = sliding_window_nll(llama, token_ids, block_size=block_size, batch_size=2)
    manual_nll, manual_count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(token_ids), block_size):
            chunk = token_ids[start : start + block_size][None]
            loss = llama(input_ids=chunk, labels=chunk).loss
            manual_nll += loss.item() * (chunk.shape[1] - 1)
            manual_count += chunk.shape[1] - 1
    assert sum(counts) == manual_count
    assert sum(nll) == pytest.approx(manual_nll, rel=1e-5)


@pytest.mark.parametrize("stride", [1, 5, 12])
def test_strided_windows_equal_token_by_token_scoring(llama, token_ids, stride):
    # Independent: score each token alone from the context its window gives it, one forward pass per token.
    block_size = 16
    expected = 0.0
    with torch.no_grad():
        for t in range(1, len(token_ids)):
            window = next(w for w in range(0, len(token_ids), stride) if min(w + block_size, len(token_ids)) > t)
            logits = llama(input_ids=token_ids[window:t][None]).logits[0, -1]
            expected -= F.log_softmax(logits, dim=-1)[token_ids[t]].item()
    nll, counts = sliding_window_nll(llama, token_ids, block_size=block_size, stride=stride, batch_size=3)
    assert sum(counts) == len(token_ids) - 1
    assert sum(nll) == pytest.approx(expected, rel=1e-5)


def test_bf16_autocast_is_close_to_fp32(llama, token_ids):
    nll_fp32, counts_fp32 = sliding_window_nll(llama, token_ids, block_size=16)
    nll_bf16, counts_bf16 = sliding_window_nll(llama, token_ids, block_size=16, bf16=True)
    assert counts_bf16 == counts_fp32
    assert math.isclose(sum(nll_bf16), sum(nll_fp32), rel_tol=2e-2)
