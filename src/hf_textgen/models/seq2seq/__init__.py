"""The encoder-decoder Transformer family (model_type `hf_textgen_seq2seq`)."""

from .configuration_seq2seq import Seq2SeqTransformerConfig
from .modeling_seq2seq import (
    Seq2SeqTransformerForConditionalGeneration,
    Seq2SeqTransformerModel,
    Seq2SeqTransformerPreTrainedModel,
)

__all__ = [
    "Seq2SeqTransformerConfig",
    "Seq2SeqTransformerPreTrainedModel",
    "Seq2SeqTransformerModel",
    "Seq2SeqTransformerForConditionalGeneration",
]
