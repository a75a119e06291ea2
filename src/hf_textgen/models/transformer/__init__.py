"""The decoder-only Transformer language-model family (Llama architecture with fused projections)."""

from .configuration_transformer import TransformerConfig
from .modeling_transformer import (
    TransformerForCausalLM,
    TransformerForSequenceClassification,
    TransformerModel,
    TransformerPreTrainedModel,
    convert_llama_state_dict,
    convert_to_llama_state_dict,
)

__all__ = [
    "TransformerConfig",
    "TransformerForCausalLM",
    "TransformerForSequenceClassification",
    "TransformerModel",
    "TransformerPreTrainedModel",
    "convert_llama_state_dict",
    "convert_to_llama_state_dict",
]
