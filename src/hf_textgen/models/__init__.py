"""The model families, and the one place that registers them with the transformers Auto classes."""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
)

from hf_textgen.models.rnn import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNModel, RNNPreTrainedModel
from hf_textgen.models.seq2seq import (
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    Seq2SeqTransformerModel,
    Seq2SeqTransformerPreTrainedModel,
)
from hf_textgen.models.transformer import (
    TransformerConfig,
    TransformerForCausalLM,
    TransformerForSequenceClassification,
    TransformerModel,
    TransformerPreTrainedModel,
)

__all__: list[str] = [
    "RNNConfig",
    "RNNForCausalLM",
    "RNNForSequenceClassification",
    "RNNModel",
    "RNNPreTrainedModel",
    "Seq2SeqTransformerConfig",
    "Seq2SeqTransformerForConditionalGeneration",
    "Seq2SeqTransformerModel",
    "Seq2SeqTransformerPreTrainedModel",
    "TransformerConfig",
    "TransformerForCausalLM",
    "TransformerForSequenceClassification",
    "TransformerModel",
    "TransformerPreTrainedModel",
]

# (config class, {Auto class: model class}) per family; a family adds its line when it lands.
_REGISTRY: list[tuple[type, dict[type, type]]] = [
    (
        RNNConfig,
        {
            AutoModel: RNNModel,
            AutoModelForCausalLM: RNNForCausalLM,
            AutoModelForSequenceClassification: RNNForSequenceClassification,
        },
    ),
    (
        TransformerConfig,
        {
            AutoModel: TransformerModel,
            AutoModelForCausalLM: TransformerForCausalLM,
            AutoModelForSequenceClassification: TransformerForSequenceClassification,
        },
    ),
    (
        Seq2SeqTransformerConfig,
        {AutoModel: Seq2SeqTransformerModel, AutoModelForSeq2SeqLM: Seq2SeqTransformerForConditionalGeneration},
    ),
]


def _register() -> None:
    for config_class, models in _REGISTRY:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        for auto_class, model_class in models.items():
            auto_class.register(config_class, model_class, exist_ok=True)
            # `save_pretrained` writes `auto_map` and copies the modeling code so the folder loads with
            # `trust_remote_code=True` where hf_textgen is not installed.
            model_class.register_for_auto_class(auto_class.__name__)
        config_class.register_for_auto_class()


_register()
