"""Configuration of the recurrent (LSTM / GRU / Elman RNN) language models."""

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

CELL_TYPES = ("lstm", "gru", "rnn")


@strict
class RNNConfig(PreTrainedConfig):
    r"""Configuration of an RNN language model: embedding -> stacked LSTM/GRU/RNN layers -> linear head.

    The defaults describe a small but real word-piece language model (two 512-unit LSTM layers with tied
    input/output embeddings, as in Press & Wolf 2017), which trains in minutes on a few megabytes of text.

    Args:
        vocab_size (`int`, defaults to 16384): Number of tokens in the vocabulary; must match the tokenizer.
        hidden_size (`int`, defaults to 512): Units in each recurrent layer (per direction).
        embedding_size (`int`, *optional*): Width of the token embeddings; `None` (the default) means `hidden_size`.
            Must equal `hidden_size` when `tie_word_embeddings` is set, because the output layer then reuses the
            embedding matrix.
        num_hidden_layers (`int`, defaults to 2): Number of stacked recurrent layers.
        cell_type (`str`, defaults to `"lstm"`): `"lstm"`, `"gru"` or `"rnn"` (Elman RNN with tanh).
        dropout (`float`, defaults to 0.2): Dropout probability applied in three places: to the token embeddings,
            between consecutive recurrent layers, and to the output of the last layer before the head.
        bidirectional (`bool`, defaults to `False`): Run each layer in both directions. Only meaningful for
            `RNNForSequenceClassification`; a causal language model cannot look at future tokens, so
            `RNNForCausalLM` refuses it.
        tie_word_embeddings (`bool`, defaults to `True`): Share the input embedding matrix with the output layer.
        initializer_range (`float`, defaults to 0.1): Standard deviation of the normal init of untied heads
            (embeddings start at unit scale, see `RNNPreTrainedModel._init_weights`).
        use_cache (`bool`, defaults to `True`): Return the recurrent state so that generation feeds one token a step.
        pad_token_id (`int`, *optional*): Padding token; also used to find the real tokens when no attention mask
            is given to `RNNForSequenceClassification`.
        bos_token_id (`int`, *optional*): Beginning-of-sequence token.
        eos_token_id (`int` or `list[int]`, *optional*): End-of-sequence token(s); generation stops on them.

    Example:
        ```python
        >>> from hf_textgen import RNNConfig, RNNForCausalLM
        >>> config = RNNConfig(vocab_size=1000, hidden_size=128, cell_type="gru")
        >>> model = RNNForCausalLM(config)
        ```
    """

    model_type = "hf_textgen_rnn"

    vocab_size: int = 16384
    hidden_size: int = 512
    embedding_size: int | None = None
    num_hidden_layers: int = 2
    cell_type: str = "lstm"
    dropout: float | int = 0.2
    bidirectional: bool = False
    tie_word_embeddings: bool = True
    initializer_range: float = 0.1
    use_cache: bool = True
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Run here as well as by `validate()` (which `@strict` runs after `__init__` and `save_pretrained` runs
        # again), so that a bad config raises a plain `ValueError` naming the field.
        self.validate_architecture()

    @property
    def input_embedding_size(self) -> int:
        """The embedding width in use: `embedding_size`, or `hidden_size` when that is None (it then follows
        `hidden_size` when a config override changes it)."""
        return self.hidden_size if self.embedding_size is None else self.embedding_size

    def validate_architecture(self) -> None:
        """Part of the `@strict` validation (also run by `save_pretrained` and when a model is built from the
        config, so a config edited after construction is checked too).

        Raises:
            ValueError: Naming the field and its value when the configuration cannot describe a working model.
        """
        for name in ("vocab_size", "hidden_size", "embedding_size", "num_hidden_layers"):
            value = getattr(self, name)
            if name == "embedding_size" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        if self.cell_type not in CELL_TYPES:
            raise ValueError(f"`cell_type` must be one of {CELL_TYPES}, got {self.cell_type!r}.")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, int | float) or not 0 <= self.dropout < 1:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout!r}.")
        if self.tie_word_embeddings and self.input_embedding_size != self.hidden_size:
            raise ValueError(
                f"`tie_word_embeddings=True` needs `embedding_size` ({self.embedding_size}) equal to `hidden_size` "
                f"({self.hidden_size}): the output layer reuses the embedding matrix. Set tie_word_embeddings=False "
                "or make the sizes equal."
            )
        if not isinstance(self.bidirectional, bool):
            raise ValueError(f"`bidirectional` must be True or False, got {self.bidirectional!r}.")
        if not self.initializer_range >= 0:
            raise ValueError(f"`initializer_range` must be non-negative, got {self.initializer_range!r}.")
        for name in ("pad_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`{name}` ({value}) must be a token id in [0, vocab_size={self.vocab_size}).")
        eos_ids = self.eos_token_id if isinstance(self.eos_token_id, list) else [self.eos_token_id]
        for value in eos_ids:
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(f"`eos_token_id` ({value}) must be a token id in [0, vocab_size={self.vocab_size}).")

    @property
    def layer_types(self) -> list[str]:
        # Tells transformers' `DynamicCache(config=...)` to give every layer a recurrent-state cache slot (no keys and
        # values), which `generate` reorders for beam search like Mamba's.
        return ["linear_attention"] * self.num_hidden_layers

    @property
    def number_of_conv_states(self) -> int:
        # transformers' name for the number of state tensors per cache layer: an LSTM carries (h, c), GRU/RNN only h.
        return 2 if self.cell_type == "lstm" else 1


__all__ = ["RNNConfig"]
