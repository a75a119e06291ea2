"""The models the benchmarks put side by side, built at identical shapes.

"ours" is `hf_textgen`'s `TransformerForCausalLM`, "llama" is transformers' `LlamaForCausalLM` with the same
sizes (same maths: RMSNorm, rotary positions, SwiGLU, no biases), and "rnn" is `hf_textgen`'s `RNNForCausalLM`.
In a side-by-side pair "ours" is converted from the Llama (`TransformerForCausalLM.from_llama`), so both hold
the same weights and compute the same function: same losses, same greedy tokens, only the speed differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel


@dataclass(frozen=True)
class Shape:
    """The size of a benchmarked decoder and of the batch it trains on.

    Attributes:
        hidden_size: Width of the residual stream.
        num_hidden_layers: Decoder layers.
        num_attention_heads: Attention heads (multi-head: as many key/value heads).
        intermediate_size: Width of the SwiGLU feed-forward layer.
        vocab_size: Vocabulary size (sets the embedding and output-projection cost).
        seq_len: Tokens per training sequence.
        batch_size: Sequences per training step.
        tie_word_embeddings: Whether the output projection shares the embedding matrix.
    """

    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    vocab_size: int
    seq_len: int
    batch_size: int
    tie_word_embeddings: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# The shapes of issue 9. "gpt2" is GPT-2 small's size (768 wide, 12 layers, 124M parameters with tied
# embeddings and a 50304-token vocabulary, seq 1024) with a SwiGLU width of 8/3 * 768 so the count matches.
SHAPES: dict[str, Shape] = {
    "small": Shape(256, 4, 4, 1024, 8192, 256, 8),
    "medium": Shape(512, 8, 8, 2048, 8192, 256, 8),
    "gpt2": Shape(768, 12, 12, 2048, 50304, 1024, 8, tie_word_embeddings=True),
}

_NO_SPECIAL_TOKENS = {"bos_token_id": None, "eos_token_id": None, "pad_token_id": None}


def build_ours(shape: Shape, max_positions: int) -> PreTrainedModel:
    """`hf_textgen`'s Transformer causal LM at `shape`, able to see `max_positions` tokens."""
    from hf_textgen import TransformerConfig, TransformerForCausalLM

    config = TransformerConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=shape.tie_word_embeddings,
        **_NO_SPECIAL_TOKENS,
    )
    return TransformerForCausalLM(config)


def build_llama(shape: Shape, max_positions: int) -> PreTrainedModel:
    """transformers' `LlamaForCausalLM` at `shape` (its default SDPA attention), able to see `max_positions`."""
    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=max_positions,
        tie_word_embeddings=shape.tie_word_embeddings,
        **_NO_SPECIAL_TOKENS,
    )
    return LlamaForCausalLM(config)


def build_rnn(shape: Shape, cell_type: str = "lstm") -> PreTrainedModel:
    """`hf_textgen`'s RNN causal LM with `shape`'s width, depth and vocabulary (no dropout)."""
    from hf_textgen import RNNConfig, RNNForCausalLM

    config = RNNConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        cell_type=cell_type,
        dropout=0.0,
        tie_word_embeddings=shape.tie_word_embeddings,
        **_NO_SPECIAL_TOKENS,
    )
    return RNNForCausalLM(config)


def build_pair(shape: Shape, max_positions: int) -> dict[str, PreTrainedModel]:
    """`{"ours": ..., "llama": ...}` at `shape` holding the same weights (ours converted from the Llama)."""
    from hf_textgen import TransformerForCausalLM

    llama = build_llama(shape, max_positions)
    ours = TransformerForCausalLM.from_llama(llama)
    return {"ours": ours, "llama": llama}


def parameter_count(model: torch.nn.Module) -> int:
    """All parameters, a tied matrix counted once."""
    return sum(parameter.numel() for parameter in model.parameters())


def matmul_parameter_count(model: PreTrainedModel) -> int:
    """The parameters that take part in matrix products: all but an untied input embedding (a table lookup).

    This is the `N` of the `6 * N` FLOPs-per-token rule; a tied embedding counts because the output
    projection multiplies by it.
    """
    total = parameter_count(model)
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings()
    tied = output is not None and output.weight.data_ptr() == embedding.data_ptr()
    return total if tied else total - embedding.numel()


def training_flops_per_token(model: PreTrainedModel, shape: Shape) -> float:
    """Forward + backward FLOPs per trained token: `6 * N` plus attention's `12 * layers * hidden * seq`.

    The attention term is the PaLM / nanoGPT convention (scores and weighted values, forward and backward, over
    the full `seq x seq` square, not only its causal half), so the MFU here is comparable with theirs.
    """
    attention = 12 * shape.num_hidden_layers * shape.hidden_size * shape.seq_len
    return 6 * matmul_parameter_count(model) + attention
