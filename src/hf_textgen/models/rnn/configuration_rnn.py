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
# Fields added with the initialisation that starts the loss at ln(vocab_size); a config saved without them loads
# with them off, as its weights were trained.
_FIELDS_ADDED_WITH_THE_INIT = ("scale_embedding", "final_norm")


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
        classifier_pooling (`str`, defaults to `"last"`): How `RNNForSequenceClassification` summarises a sequence:
            `"last"` (the state after the last real token, plus the backward direction's after the first) or
            `"mean"` (the mean output over the real tokens).
        scale_embedding (`bool`, defaults to `True`): Multiply the token embeddings by sqrt(embedding width), as the
            Transformer paper does (Vaswani et al. 2017, section 3.4; transformers' `scale_embedding` in Bart and
            Marian). With the embeddings stored at std `embedding_size**-0.5`, the recurrent layers see unit-scale
            inputs while a tied head sees rows of norm ~1. See "Initialisation" below.
        final_norm (`bool`, defaults to `True`): RMS-normalise the last layer's outputs (`RNNModel.norm`, as
            Mamba's `norm_f` does) before the head, with a learned gain that starts at 0.3; the last LSTM layer then
            starts at a fifth of torch's init scale. See "Initialisation".
        initializer_range (`float`, defaults to 0.1): Standard deviation of the normal init of the classification
            head (the embeddings and the language-model head have their own scales, see "Initialisation").
        use_cache (`bool`, defaults to `True`): Return the recurrent state so that generation feeds one token a step.
        pad_token_id (`int`, *optional*): Padding token; also used to find the real tokens when no attention mask
            is given to `RNNForSequenceClassification`.
        bos_token_id (`int`, *optional*): Beginning-of-sequence token.
        eos_token_id (`int` or `list[int]`, *optional*): End-of-sequence token(s); generation stops on them.

    Initialisation, so that the untrained model predicts every token about equally (loss ~ln(vocab_size) at any
    width, vocabulary and cell type) and the input side still gets unit-scale vectors:
        - Embeddings ~ N(0, 1 / embedding_size), multiplied by sqrt(embedding_size) on the way in
          (`scale_embedding`): unit-scale inputs, which the LSTM needs (with inputs of std 0.1 the signal shrank
          through each stacked layer and a 4-layer LSTM sat at the unigram loss for hundreds of steps at nanoGPT's
          char recipe), while the tied head's rows have norm ~1 instead of ~sqrt(hidden_size). Unscaled unit-scale
          rows gave logits of spread ~sqrt(hidden_size): loss 10.4 instead of ln(8192) = 9.0 for the default LSTM,
          26.9 for the Elman RNN.
        - Final RMSNorm with gain 0.3 (`final_norm`): the head reads states of rms 0.3 whatever the cell and depth
          (raw outputs range from rms 0.04 for a deep LSTM to 0.3 for an Elman RNN), so the logits start with a
          spread of ~0.3 (loss within ~0.1 nats of ln(vocab_size)), yet the head can sharpen from the first steps:
          a fixed output scale (T5's `hidden_size**-0.5` on the tied head) or unnormalised small states also start
          at ln(vocab_size) but learned far slower (LSTM at the nanoGPT recipe without the norm: 3.37 after 250
          steps and 2.175 after 2000, against 2.64 and 1.946 with it).
        - Untied head ~ N(0, 1 / hidden_size) (fan-in scaling, LeCun et al. 1998): the same starting logits.
        - Recurrent weights U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) (torch's init); LSTM forget-gate bias 1
          (Jozefowicz et al. 2015).
        - With `final_norm`, the last LSTM layer's weights and biases start at a fifth of that bound (its
          forget-gate bias still 1). The norm makes the model's output nearly independent of that layer's scale
          (exactly so while its cells are near-linear, which small weights keep them), while Adam moves every weight
          by about the learning rate per step whatever its size: a layer five times smaller learns about five times
          faster relative to its size, the effective learning rate of a scale-invariant weight (van Laarhoven 2017,
          "L2 regularization versus batch and weight normalization"; Hoffer et al. 2018, "Norm matters"). The logits
          at init do not change (the norm sets their scale). At nanoGPT's char recipe (4 x 128 LSTM, tied, 2000
          steps, seeds 0/1/2) the validation loss went from 1.946/1.912/1.958 with torch's bound everywhere to
          1.889/1.862/1.886 (a third: 1.896/1.864/1.921; a ninth: 1.881/1.849/1.883, but then a 4 x 1024 LSTM's
          first-position states fall below the norm's eps); the unit-scale tied head used before
          `final_norm` gave 1.918/1.888/1.904 from a loss 0.35 nats above ln(vocab_size). The GRU and the Elman RNN
          keep torch's bound: a third of it moved them by noise at seed 0 (GRU 1.814 -> 1.810, Elman RNN 1.885 ->
          1.892). A wider norm gain instead (0.5, GRU/LSTM logits then start up to 0.2 nats above ln(vocab_size))
          gave the LSTM 1.919/1.896/1.943; orthogonal recurrent matrices (Saxe et al. 2014) 1.967 at seed 0.
    A config saved before `scale_embedding` and `final_norm` existed loads with both off: its weights were
    trained without them, so they give the same outputs as before (`from_dict`).

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
    classifier_pooling: str = "last"
    tie_word_embeddings: bool = True
    scale_embedding: bool = True
    final_norm: bool = True
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

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs) -> "RNNConfig":
        # A saved config without these fields predates them: its weights were trained with unscaled embeddings and
        # no final norm, so it keeps both off rather than silently taking today's defaults (from_pretrained and
        # AutoConfig come through here).
        legacy = {name: False for name in _FIELDS_ADDED_WITH_THE_INIT if name not in config_dict}
        return super().from_dict({**config_dict, **legacy}, **kwargs)

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
        if self.classifier_pooling not in ("last", "mean"):
            raise ValueError(f"`classifier_pooling` must be 'last' or 'mean', got {self.classifier_pooling!r}.")
        for name in ("bidirectional", "scale_embedding", "final_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
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
