"""`DataArguments`: the data flags shared by pretrain, finetune and evaluate (transformers' run_clm.py names)."""

from __future__ import annotations

from dataclasses import dataclass, field

SAMPLE_BY_CHOICES = ("auto", "paragraph", "line", "article", "document")
TOKENIZER_TYPES = ("bpe", "char", "word")
# Vocabulary size per tokenizer type when none is given (`train-tokenizer --vocab_size`, `pretrain
# --tokenizer_vocab_size`): BPE small enough for the bundled corpus, word-level the size of WikiText-2's, char
# keeps every character seen.
DEFAULT_VOCAB_SIZES: dict[str, int | None] = {"bpe": 8000, "word": 32000, "char": None}
VOCAB_SIZE_DEFAULTS_HELP = ", ".join(
    f"{kind} {size}" if size else f"{kind} every character seen" for kind, size in DEFAULT_VOCAB_SIZES.items()
)
# A block needs one token to predict from and one to score (`hf_textgen.data.processing.resolve_block_size`).
MIN_BLOCK_SIZE = 2


@dataclass
class DataArguments:
    """Which text to train and evaluate on, and how to cut it into examples (for `HfArgumentParser`).

    With neither `dataset_name` nor `train_file`, the bundled Shakespeare corpus is used.
    """

    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "The name of the dataset to use (via the datasets library), e.g. Salesforce/wikitext, or a "
            "local folder of data files."
        },
    )
    dataset_config_name: str | None = field(
        default=None,
        metadata={"help": "The configuration name of the dataset to use (via the datasets library)."},
    )
    train_file: list[str] | None = field(
        default=None,
        metadata={
            "help": "The input training data file(s): one or more paths or globs to text (.txt), json, jsonl, csv "
            "or parquet files.",
            "nargs": "+",
        },
    )
    validation_file: str | None = field(
        default=None,
        metadata={"help": "An optional input evaluation data file to evaluate the perplexity on (a text file)."},
    )
    text_column_name: str | None = field(
        default=None,
        metadata={
            "help": "The column holding the text (json/csv/parquet/Hub data). Default: 'text', or the only string "
            "column."
        },
    )
    validation_split_percentage: int = field(
        default=5,
        metadata={
            "help": "The percentage of the train set used as validation set in case there's no validation split."
        },
    )
    block_size: int | None = field(
        default=None,
        metadata={
            "help": "Optional input sequence length after tokenization: the training text is cut into blocks of "
            "this many tokens. Default: 256 for pretrain and finetune --task causal_lm, the model's context (1024 at "
            "most) for evaluate; never beyond the model's positions."
        },
    )
    streaming: bool = field(default=False, metadata={"help": "Enable streaming mode (IterableDataset)."})
    preprocessing_num_workers: int | None = field(
        default=None, metadata={"help": "The number of processes to use for the preprocessing."}
    )
    overwrite_cache: bool = field(
        default=False, metadata={"help": "Overwrite the cached training and evaluation sets."}
    )
    max_train_samples: int | None = field(
        default=None,
        metadata={
            "help": "For debugging purposes or quicker training, truncate the number of training examples to this "
            "value if set."
        },
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={
            "help": "For debugging purposes or quicker training, truncate the number of evaluation examples to this "
            "value if set."
        },
    )
    keep_linebreaks: bool = field(
        default=True,
        metadata={"help": "Whether to keep line breaks when using TXT files (with --sample_by line)."},
    )
    sample_by: str = field(
        default="auto",
        metadata={
            "help": "What one document of a text file is: 'paragraph' (text between blank lines; a line of only "
            "spaces is blank), 'line', 'article' (a WikiText article, ' = Title = ' to the next title) or "
            "'document' (the whole file). 'auto': paragraph, or line for a file with no blank lines (one example "
            "per line). Documents are separated by EOS.",
            "choices": list(SAMPLE_BY_CHOICES),
        },
    )

    def __post_init__(self):
        if isinstance(self.train_file, str):
            self.train_file = [self.train_file]
        if not 0 < self.validation_split_percentage < 100:
            raise ValueError(
                f"validation_split_percentage must be between 1 and 99, got {self.validation_split_percentage}"
            )
        if self.block_size is not None and self.block_size < MIN_BLOCK_SIZE:
            raise ValueError(f"block_size must be at least {MIN_BLOCK_SIZE} tokens, got {self.block_size}")
        if self.preprocessing_num_workers is not None and self.preprocessing_num_workers < 1:
            raise ValueError(f"preprocessing_num_workers must be >= 1, got {self.preprocessing_num_workers}")
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.sample_by not in SAMPLE_BY_CHOICES:
            raise ValueError(f"sample_by must be one of {', '.join(SAMPLE_BY_CHOICES)}, got {self.sample_by!r}")
        if self.dataset_name is not None and (self.train_file or self.validation_file):
            raise ValueError("pass either dataset_name or train_file/validation_file, not both")
