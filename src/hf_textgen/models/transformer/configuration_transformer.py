"""Configuration of the decoder-only Transformer language model (Llama architecture, fused projections)."""

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

# RoPE variants whose inverse frequencies depend only on the config, so cos/sin can be computed per forward
# without `dynamic_rope_update` (which rescales on the fly and would break `torch.compile`).
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
CLASSIFIER_POOLING = ("last", "mean")
SUPPORTED_ACTIVATIONS = ("silu", "gelu", "gelu_pytorch_tanh", "relu")
# Fields with the same name and meaning in transformers' `LlamaConfig` (plus `rope_parameters`, copied apart).
_LLAMA_FIELDS = (
    "vocab_size",
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "initializer_range",
    "rms_norm_eps",
    "use_cache",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
    "tie_word_embeddings",
    "attention_dropout",
)


@strict
class TransformerConfig(PreTrainedConfig):
    r"""Configuration of a [`TransformerModel`] / [`TransformerForCausalLM`].

    The architecture is the one of transformers' `LlamaForCausalLM` (pre-norm RMSNorm, rotary positions, SwiGLU
    feed-forward, no biases, optional grouped-query attention) and a model built from this config computes the same
    function as a Llama model of the same shape. Field names are the transformers ones, so a `LlamaConfig` converts
    one to one (see [`TransformerConfig.from_llama_config`]). The defaults describe a small real model (~40M
    parameters with a 32k vocabulary).

    Args:
        vocab_size: Number of tokens in the vocabulary (rows of the embedding matrix).
        hidden_size: Width of the residual stream.
        intermediate_size: Width of the SwiGLU feed-forward layer (about 8/3 of `hidden_size` keeps the cost of a
            4x GELU MLP).
        num_hidden_layers: Number of decoder layers.
        num_attention_heads: Number of query heads.
        num_key_value_heads: Number of key/value heads; fewer than `num_attention_heads` gives grouped-query
            attention (a smaller KV cache). `None` means multi-head attention (as many as query heads).
        head_dim: Width of one attention head; `None` means `hidden_size // num_attention_heads`.
        hidden_act: Activation of the gated feed-forward layer (`"silu"` gives SwiGLU).
        max_position_embeddings: Longest sequence the model is meant to handle (prompt plus generated tokens).
        initializer_range: Standard deviation of the normal initialisation of linear and embedding weights
            (GPT-2's 0.02). The final RMSNorm's gain starts at `min(1, 0.3 / (initializer_range * sqrt(hidden_size)))`
            rather than 1: the logits then start with a spread of at most 0.3 and the loss at init is ~ln(vocab_size)
            at any width, tied or untied (with gain 1 the spread is `initializer_range * sqrt(hidden_size)`, +0.2
            nats at width 1024). Up to width 225 (at std 0.02) the gain starts at 1, as in Llama.
        rms_norm_eps: Epsilon added to the mean square in RMSNorm, for numerical stability.
        use_cache: Whether the model returns a key/value cache for fast generation.
        pad_token_id: Id of the padding token (also used to find the last real token for sequence classification).
        bos_token_id: Id of the beginning-of-sequence token.
        eos_token_id: Id (or ids) of the end-of-sequence token.
        tie_word_embeddings: Whether the output projection shares its weight with the input embedding (saves
            `vocab_size * hidden_size` parameters, the usual choice for small models).
        rope_parameters: Rotary embedding parameters, as in transformers' Llama: a dict with `rope_type`
            (one of "default", "linear", "llama3", "yarn") and `rope_theta` (the base wavelength), plus the
            type's own keys. `rope_theta=...` may also be passed directly.
        attention_dropout: Dropout probability on the attention weights (training only).
        hidden_dropout: Dropout probability on the output of each attention and feed-forward block before it is
            added to the residual stream (training only; Llama has none, so keep 0.0 for exact Llama equivalence
            in training mode).
        fused_loss_in_training: In training mode with `labels`, compute the LM head and the cross-entropy loss
            chunk by chunk without materialising the `(batch, seq_len, vocab_size)` logits: the same loss and
            gradients with far less memory traffic, but the output's `logits` is None. Evaluation and generation
            always return logits.
        classifier_pooling: How `TransformerForSequenceClassification` summarises a sequence: `"last"` (the last
            real token's hidden state, which has attended to the whole text) or `"mean"` (the mean over the real
            tokens, as ModernBERT's `classifier_pooling="mean"`; fine-tuned from a pretrained LM on few labels it
            is the better choice, see the README's "What pretraining buys").

    Example:

    ```python
    >>> from hf_textgen import TransformerConfig, TransformerForCausalLM
    >>> config = TransformerConfig(vocab_size=8192, hidden_size=256, num_hidden_layers=4, num_attention_heads=4)
    >>> model = TransformerForCausalLM(config)
    ```
    """

    model_type = "hf_textgen_transformer"
    keys_to_ignore_at_inference = ["cache"]
    # Tensor-parallel plan: the fused projections are split column-wise, the output ones row-wise.
    base_model_tp_plan = {
        "layers.*.self_attn.qkv_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }
    base_model_pp_plan = {
        "embed_tokens": (["input_ids"], ["inputs_embeds"]),
        "layers": (["hidden_states", "attention_mask"], ["hidden_states"]),
        "norm": (["hidden_states"], ["hidden_states"]),
    }

    vocab_size: int = 32000
    hidden_size: int = 512
    intermediate_size: int = 1408
    num_hidden_layers: int = 8
    num_attention_heads: int = 8
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    tie_word_embeddings: bool = True
    rope_parameters: dict | None = None
    attention_dropout: int | float = 0.0
    hidden_dropout: int | float = 0.0
    fused_loss_in_training: bool = True
    classifier_pooling: str = "last"

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        # Size checks run before `head_dim` is derived, so a bad head count names itself rather than `head_dim`.
        self._check_sizes()
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads
        super().__post_init__(**kwargs)
        self._check_architecture()

    @property
    def rope_theta(self) -> float:
        """The RoPE base wavelength, stored in `rope_parameters["rope_theta"]` as transformers' Llama does."""
        return (self.rope_parameters or {}).get("rope_theta", self.default_theta)

    @rope_theta.setter
    def rope_theta(self, value: float) -> None:
        self.rope_parameters = {**(self.rope_parameters or {"rope_type": "default"}), "rope_theta": value}

    def _check_sizes(self) -> None:
        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"`hidden_size` ({self.hidden_size}) must be divisible by `num_attention_heads` "
                f"({self.num_attention_heads}), or set `head_dim` explicitly."
            )
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"`num_attention_heads` ({self.num_attention_heads}) must be a multiple of `num_key_value_heads` "
                f"({self.num_key_value_heads}): each key/value head serves a whole group of query heads."
            )

    def _check_architecture(self) -> None:
        self._check_sizes()
        if isinstance(self.head_dim, bool) or not isinstance(self.head_dim, int) or self.head_dim <= 0:
            raise ValueError(f"`head_dim` must be a positive integer, got {self.head_dim!r}.")
        if self.head_dim % 2 != 0:
            raise ValueError(f"`head_dim` ({self.head_dim}) must be even: rotary embeddings rotate pairs of dims.")
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(f"`hidden_act` must be one of {SUPPORTED_ACTIVATIONS}, got {self.hidden_act!r}.")
        if not self.rms_norm_eps > 0:
            raise ValueError(f"`rms_norm_eps` must be positive, got {self.rms_norm_eps!r}.")
        if not self.initializer_range >= 0:
            raise ValueError(f"`initializer_range` must be non-negative, got {self.initializer_range!r}.")
        if self.classifier_pooling not in CLASSIFIER_POOLING:
            raise ValueError(
                f"`classifier_pooling` must be one of {CLASSIFIER_POOLING}, got {self.classifier_pooling!r}."
            )
        for name in ("attention_dropout", "hidden_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"`{name}` must be in [0, 1), got {value!r}.")
        rope = self.rope_parameters or {}
        rope_type = rope.get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(
                f"`rope_parameters['rope_type']` must be one of {SUPPORTED_ROPE_TYPES}, got {rope_type!r}."
            )
        theta = rope.get("rope_theta", self.default_theta)
        if not (isinstance(theta, int | float) and theta > 0):
            raise ValueError(f"`rope_theta` must be a positive number, got {theta!r}.")
        for name in ("pad_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`{name}` ({value}) must be a token id in [0, vocab_size={self.vocab_size}).")
        eos_ids = self.eos_token_id if isinstance(self.eos_token_id, list) else [self.eos_token_id]
        for value in eos_ids:
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`eos_token_id` ({value}) must be a token id in [0, vocab_size={self.vocab_size}).")

    def validate_architecture(self):
        """Part of the `@strict` validation (also run by `save_pretrained`): the sizes must fit together."""
        self._check_architecture()

    @classmethod
    def from_llama_config(cls, llama_config, **overrides) -> "TransformerConfig":
        """Builds the config of the Transformer computing the same function as a transformers `LlamaConfig`.

        Args:
            llama_config: A `transformers.LlamaConfig` (or a config with the same fields).
            **overrides: Fields to set differently (e.g. `tie_word_embeddings`).

        Returns:
            The equivalent `TransformerConfig`.

        Raises:
            ValueError: If the Llama config uses a feature this architecture does not have (biases, a RoPE type
                outside `SUPPORTED_ROPE_TYPES`, tensor-parallel pretraining slices).
        """
        for name in ("attention_bias", "mlp_bias"):
            if getattr(llama_config, name, False):
                raise ValueError(
                    f"Llama configs with `{name}=True` are not supported: this architecture has no biases."
                )
        if (getattr(llama_config, "pretraining_tp", 1) or 1) != 1:
            raise ValueError("Llama configs with `pretraining_tp` != 1 are not supported.")
        fields = {name: getattr(llama_config, name) for name in _LLAMA_FIELDS}
        fields["rope_parameters"] = dict(llama_config.rope_parameters)
        fields.update(overrides)
        return cls(**fields)

    def to_llama_config(self, **overrides):
        """Builds the transformers `LlamaConfig` of a Llama model computing the same function as this config.

        Args:
            **overrides: Fields to set differently on the Llama config (e.g. `attn_implementation`).

        Returns:
            The equivalent `transformers.LlamaConfig`.
        """
        from transformers import LlamaConfig

        fields = {name: getattr(self, name) for name in _LLAMA_FIELDS}
        fields["rope_parameters"] = dict(self.rope_parameters)
        fields.update(overrides)
        return LlamaConfig(**fields)


__all__ = ["TransformerConfig"]
