"""Rolling-window perplexity against independent computations on tiny models."""

import math

import pytest
import torch
from torch.nn import functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from hf_textgen.evaluation.language_modeling import Window, rolling_nll, sliding_window_nll, sliding_windows

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
    for num_tokens, block_size, stride in [(57, 16, 16), (57, 16, 5), (57, 16, 1), (16, 16, 4), (3, 16, 8), (9, 1, 1)]:
        windows = sliding_windows(num_tokens, block_size, stride)
        scored = [t for w in windows for t in range(w.score_from, w.end + 1)]
        assert scored == list(range(1, num_tokens)), (num_tokens, block_size, stride)
        assert all(w.end - w.begin <= block_size and w.begin <= w.score_from - 1 for w in windows)


def test_windows_layout_and_bad_values():
    # lm-eval's disjoint windows: each feeds block_size tokens and scores the next block_size; the last one reaches
    # back to a full block for context.
    assert sliding_windows(11, 4) == [Window(0, 4, 1), Window(4, 8, 5), Window(6, 10, 9)]
    assert sliding_windows(10, 4, 2) == [
        Window(0, 2, 1),
        Window(0, 4, 3),
        Window(2, 6, 5),
        Window(4, 8, 7),
        Window(5, 9, 9),
    ]
    assert sliding_windows(1, 4) == []
    with pytest.raises(ValueError, match="stride"):
        sliding_windows(10, 4, 5)
    with pytest.raises(ValueError, match="block_size"):
        sliding_windows(10, 0)


def test_one_window_equals_the_models_own_loss(llama, token_ids):
    nll, count = sliding_window_nll(llama, token_ids, block_size=64)
    assert count == len(token_ids) - 1
    with torch.no_grad():
        loss = llama(input_ids=token_ids[None], labels=token_ids[None]).loss
    assert nll / count == pytest.approx(loss.item(), rel=1e-5)


def _token_by_token(llama, token_ids, context) -> float:
    """Independent: score each token alone from the tokens `context(t)` gives it, one forward pass per token."""
    expected = 0.0
    with torch.no_grad():
        for t in range(1, len(token_ids)):
            logits = llama(input_ids=token_ids[context(t) : t][None]).logits[0, -1]
            expected -= F.log_softmax(logits, dim=-1)[token_ids[t]].item()
    return expected


def test_stride_equal_to_block_size_equals_lm_eval_windows(llama, token_ids):
    block_size = 16
    nll, count = sliding_window_nll(llama, token_ids, block_size=block_size, batch_size=2)
    num_tokens = len(token_ids)

    def context(t):
        # Token t is in the chunk of targets starting at 1 + k * block_size; its window starts block_size before the
        # chunk's last target, or earlier for the final chunk so that the window is full.
        first = 1 + (t - 1) // block_size * block_size
        last = min(first + block_size, num_tokens)
        return max(0, last - 1 - block_size)

    assert count == num_tokens - 1
    assert nll == pytest.approx(_token_by_token(llama, token_ids, context), rel=1e-5)


@pytest.mark.parametrize("stride", [1, 5, 12])
def test_strided_windows_equal_token_by_token_scoring(llama, token_ids, stride):
    block_size = 16
    num_tokens = len(token_ids)

    def context(t):
        first = 1 + (t - 1) // stride * stride
        return max(0, min(first + stride, num_tokens) - 1 - block_size)

    nll, count = sliding_window_nll(llama, token_ids, block_size=block_size, stride=stride, batch_size=3)
    assert count == num_tokens - 1
    assert nll == pytest.approx(_token_by_token(llama, token_ids, context), rel=1e-5)


def test_documents_of_different_lengths_batch_with_padding(llama, token_ids):
    # Right padding without a mask changes no score in a causal model: batched equals one sequence at a time.
    sequences = [token_ids[:5].tolist(), token_ids[5:40].tolist(), token_ids[40:].tolist()]
    batched = rolling_nll(llama, sequences, block_size=16, batch_size=3)
    alone = [rolling_nll(llama, [ids], block_size=16, batch_size=1) for ids in sequences]
    assert batched[1] == [counts[0] for _, counts in alone] == [4, 34, 16]
    assert batched[0] == pytest.approx([nll[0] for nll, _ in alone], rel=1e-5)


def test_bf16_autocast_is_close_to_fp32(llama, token_ids):
    nll_fp32, count_fp32 = sliding_window_nll(llama, token_ids, block_size=16)
    nll_bf16, count_bf16 = sliding_window_nll(llama, token_ids, block_size=16, bf16=True)
    assert count_bf16 == count_fp32
    assert math.isclose(nll_bf16, nll_fp32, rel_tol=2e-2)
