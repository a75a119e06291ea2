"""Tiny models of every family for the tests that drive hf_textgen through other libraries (PEFT, TRL, lm-eval).

Each model is built on the conftest tokenizer's vocabulary and special tokens, so it can be saved next to that
tokenizer and loaded by a tool from the folder alone.
"""

import torch

from hf_textgen import (
    RNNConfig,
    RNNForCausalLM,
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    TransformerConfig,
    TransformerForCausalLM,
)

CAUSAL_FAMILIES = ("lstm", "gru", "rnn", "transformer")
ALL_FAMILIES = (*CAUSAL_FAMILIES, "seq2seq")


def tiny_model(family: str, tokenizer=None, seed: int = 0, **overrides):
    """A seeded tiny model of `family` ("lstm", "gru", "rnn", "transformer" or "seq2seq") in eval mode."""
    tokens = {"vocab_size": 99, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    if tokenizer is not None:
        tokens = {
            "vocab_size": len(tokenizer),
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
    attention = {"num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 128}
    torch.manual_seed(seed)
    if family in ("lstm", "gru", "rnn"):
        fields = {"hidden_size": 32, "num_hidden_layers": 2, "cell_type": family, "dropout": 0.0}
        return RNNForCausalLM(RNNConfig(**{**tokens, **fields, **overrides})).eval()
    if family == "transformer":
        fields = {"hidden_size": 32, "num_hidden_layers": 2, **attention}
        return TransformerForCausalLM(TransformerConfig(**{**tokens, **fields, **overrides})).eval()
    if family == "seq2seq":
        fields = {"hidden_size": 32, "encoder_layers": 1, "decoder_layers": 1, "dropout": 0.0, **attention}
        fields["decoder_start_token_id"] = tokens["bos_token_id"]
        return Seq2SeqTransformerForConditionalGeneration(
            Seq2SeqTransformerConfig(**{**tokens, **fields, **overrides})
        )
    raise ValueError(f"unknown family {family!r}")


def lora_targets(family: str) -> dict:
    """`LoraConfig` arguments that adapt every weight matrix of the family's blocks: the recurrent weights of an RNN
    are parameters of `nn.LSTM` / `nn.GRU` / `nn.RNN`, not `nn.Linear` modules, so PEFT reaches them through
    `target_parameters`."""
    if family in ("lstm", "gru", "rnn"):
        return {"target_modules": [], "target_parameters": ["weight_ih_l0", "weight_hh_l0"]}
    return {"target_modules": "all-linear"}
