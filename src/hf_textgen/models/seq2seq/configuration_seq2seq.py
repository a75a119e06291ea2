"""Configuration of the encoder-decoder Transformer (the classic "base" model of Attention Is All You Need)."""

from __future__ import annotations

import transformers
from packaging.version import Version

# The oldest transformers release these models are tested on. Saved with their code, they run under whatever release
# the user of a model folder has: an older one fails here, in one line, rather than somewhere inside a forward pass.
MIN_TRANSFORMERS_VERSION = "5.19"
if Version(transformers.__version__) < Version(MIN_TRANSFORMERS_VERSION):
    raise ImportError(
        f"This model needs transformers>={MIN_TRANSFORMERS_VERSION}, but transformers {transformers.__version__} is "
        f"installed: pip install -U 'transformers>={MIN_TRANSFORMERS_VERSION}'"
    )

from huggingface_hub.dataclasses import strict  # noqa: E402
from transformers import PreTrainedConfig  # noqa: E402
from transformers.activations import ACT2FN  # noqa: E402


@strict
class Seq2SeqTransformerConfig(PreTrainedConfig):
    r"""Configuration of a [`Seq2SeqTransformerModel`] / [`Seq2SeqTransformerForConditionalGeneration`].

    The defaults are the base model of Vaswani et al. (2017): 512 hidden units, 8 heads, 6 encoder and 6 decoder
    layers, a 2048-unit feed-forward layer, ReLU and dropout 0.1, one vocabulary shared by source and target whose
    embedding is also the output layer.

    `num_hidden_layers` is not stored: reading it gives `encoder_layers` (equal to `decoder_layers` unless the two
    are set apart), and setting it, e.g. `num_hidden_layers=2` in `--config_overrides`, sets both stacks (it takes
    precedence over `encoder_layers` / `decoder_layers` passed with it).

    Args:
        vocab_size: Tokens in the vocabulary shared by source and target (the classic model used ~37k BPE).
        hidden_size: Width of every residual stream, embeddings and attention.
        num_attention_heads: Attention heads per attention layer; must divide `hidden_size`.
        encoder_layers: Blocks in the encoder (self-attention + feed-forward).
        decoder_layers: Blocks in the decoder (causal self-attention + cross-attention + feed-forward).
        intermediate_size: Inner width of the feed-forward layers.
        hidden_act: Feed-forward activation, a name from `transformers.activations.ACT2FN`.
        max_position_embeddings: Longest source or target, in tokens, the model accepts.
        dropout: Dropout on embeddings and on each sub-layer's output before the residual sum.
        attention_dropout: Dropout on the attention probabilities.
        activation_dropout: Dropout after the feed-forward activation.
        layer_norm_eps: Epsilon of the layer norms.
        initializer_range: Standard deviation of the normal init of the linear layers.
        scale_embedding: Multiply token embeddings by sqrt(hidden_size) (as the paper does, so that embeddings
            initialised with std hidden_size**-0.5 have the scale of the sinusoidal positions).
        tie_word_embeddings: Use the shared token embedding as the output layer (the source and target embeddings
            are always the same matrix). The decoder's last LayerNorm starts with gain `hidden_size**-0.5`
            when tied (the head would otherwise read back the fed token with logits ~sqrt(hidden_size)), and with
            `min(1, 0.3 / (initializer_range * sqrt(hidden_size)))` when untied, so the loss at init is
            ~ln(vocab_size) at any width.
        use_cache: Return the key/value cache so generation feeds only the new token each step.
        pad_token_id: Padding token of sources and targets (masked out of attention and of the loss).
        bos_token_id: Beginning-of-sequence token.
        eos_token_id: End-of-sequence token, the end of every target.
        decoder_start_token_id: The first decoder input, from which generation starts.
    """

    model_type = "hf_textgen_seq2seq"
    keys_to_ignore_at_inference = ["cache"]

    vocab_size: int = 37000
    hidden_size: int = 512
    num_attention_heads: int = 8
    encoder_layers: int = 6
    decoder_layers: int = 6
    intermediate_size: int = 2048
    hidden_act: str = "relu"
    max_position_embeddings: int = 512
    dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02
    scale_embedding: bool = True
    tie_word_embeddings: bool = True
    use_cache: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1
    is_encoder_decoder: bool = True

    def __post_init__(self, **kwargs):
        # `num_hidden_layers=N` is shorthand for N encoder and N decoder layers (see the property below); given
        # together with `encoder_layers` / `decoder_layers` it wins, so `--config_overrides num_hidden_layers=4`
        # also applies on top of a preset that names both stacks.
        num_hidden_layers = kwargs.pop("num_hidden_layers", None)
        if num_hidden_layers is not None:
            self.num_hidden_layers = num_hidden_layers
        super().__post_init__(**kwargs)
        # Run here as well as by `validate()` (which `@strict` runs after `__init__` and `save_pretrained` runs
        # again), so that a bad config raises a plain `ValueError` naming the field.
        self.validate_architecture()

    @property
    def num_hidden_layers(self) -> int:
        # transformers sizes caches from `get_text_config(decoder=True)`, which renames `decoder_layers` to
        # `num_hidden_layers` by writing through this setter and then hiding `decoder_layers`; reading
        # `encoder_layers` here is what keeps that copy right (the same mapping Bart uses).
        return self.encoder_layers

    @num_hidden_layers.setter
    def num_hidden_layers(self, value: int) -> None:
        self.encoder_layers = value
        self.decoder_layers = value

    def validate_architecture(self) -> None:
        """Part of the `@strict` validation (also run by `save_pretrained`).

        Raises:
            ValueError: Naming the field and its value when the configuration cannot make a working model.
        """
        for name in (
            "vocab_size",
            "hidden_size",
            "num_attention_heads",
            "encoder_layers",
            "decoder_layers",
            "intermediate_size",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads})."
            )
        if self.hidden_size % 2 != 0:
            raise ValueError(f"`hidden_size` ({self.hidden_size}) must be even: the sinusoids come in sin/cos pairs.")
        for name in ("dropout", "attention_dropout", "activation_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
        if self.hidden_act not in ACT2FN:
            raise ValueError(f"`hidden_act` must be a name from transformers' ACT2FN, got {self.hidden_act!r}.")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"`layer_norm_eps` must be positive, got {self.layer_norm_eps!r}.")
        if not self.initializer_range >= 0:
            raise ValueError(f"`initializer_range` must be non-negative, got {self.initializer_range!r}.")
        if self.decoder_start_token_id is None:
            raise ValueError("`decoder_start_token_id` must be set, got None: generation starts every target from it.")
        for name in ("pad_token_id", "bos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`{name}` ({value}) must be a token id in [0, vocab_size={self.vocab_size}).")
        eos_ids = self.eos_token_id if isinstance(self.eos_token_id, list) else [self.eos_token_id]
        for value in eos_ids:
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`eos_token_id` ({value}) must be a token id in [0, vocab_size={self.vocab_size}).")


__all__ = ["Seq2SeqTransformerConfig"]
