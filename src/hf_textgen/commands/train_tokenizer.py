"""`hf-textgen train-tokenizer`: train a byte-level BPE (or char / word) tokenizer and save it as a folder.

The data flags are `pretrain`'s (`DataArguments`: `--train_file`, `--dataset_name`, `--sample_by`,
`--validation_split_percentage`, `--streaming`, ...), so a tokenizer is trained on exactly the documents the model
will see. The text reaches the trainer in batches from a memory-mapped (or, with `--streaming`, streamed) dataset,
so a corpus larger than memory is never held whole; the saved folder loads with `AutoTokenizer.from_pretrained` as a
`PreTrainedTokenizerFast`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from hf_textgen.data.arguments import DEFAULT_VOCAB_SIZES, TOKENIZER_TYPES, VOCAB_SIZE_DEFAULTS_HELP, DataArguments
from hf_textgen.errors import UserError, atomic_output_dir
from hf_textgen.parsing import parse_arguments

# Validation characters tokenized for the chars/token figure: enough for a stable number, cheap on any corpus.
_MAX_VALIDATION_CHARS = 2_000_000
_BATCH_SIZE = 1000


@dataclass
class TokenizerTrainingArguments:
    """Flags of `hf-textgen train-tokenizer`."""

    output_dir: str | None = field(default=None, metadata={"help": "The folder the tokenizer is saved to."})
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace --output_dir if it already holds files."}
    )
    tokenizer_type: str = field(
        default="bpe",
        metadata={
            "help": "bpe: byte-level BPE (lossless for any Unicode); char: one token per character; word: "
            "word-level with <unk>.",
            "choices": list(TOKENIZER_TYPES),
        },
    )
    vocab_size: int | None = field(
        default=None,
        metadata={"help": f"Vocabulary size, special tokens included. Default: {VOCAB_SIZE_DEFAULTS_HELP}."},
    )
    min_frequency: int = field(
        default=2, metadata={"help": "Ignore merges (bpe) or words / characters seen fewer times than this."}
    )


def _batches(dataset, limit_chars: int | None = None) -> Iterator[list[str]]:
    """Lists of texts from a (streaming) dataset, stopping after about `limit_chars` characters."""
    seen = 0
    for batch in dataset.iter(batch_size=_BATCH_SIZE):
        texts = [text for text in batch["text"] if text]
        yield texts
        seen += sum(map(len, texts))
        if limit_chars is not None and seen >= limit_chars:
            return


def parse_tokenizer_arguments(argv: list[str] | None = None) -> tuple[TokenizerTrainingArguments, DataArguments]:
    """Parse the flags, or one `.yaml` / `.json` file holding the same names; mistakes become UserErrors."""
    args, data_args = parse_arguments(
        (TokenizerTrainingArguments, DataArguments), argv, prog="hf-textgen train-tokenizer"
    )
    return args, data_args


def parse_args(argv: list[str] | None = None) -> tuple[TokenizerTrainingArguments, DataArguments]:
    """The flags (or one .yaml / .json file) of `hf-textgen train-tokenizer`."""
    return parse_tokenizer_arguments(argv)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, then train; see `hf-textgen train-tokenizer --help`."""
    return run(parse_args(argv))


def run(parsed: tuple[TokenizerTrainingArguments, DataArguments]) -> int:
    """Train a tokenizer on the named corpus (the bundled one by default), save it and print a one-line summary."""
    from datasets import IterableDataset

    from hf_textgen.data import load_raw_datasets, minimum_vocab_size, train_tokenizer
    from hf_textgen.data.loading import encoding_user_error, expand_data_files
    from hf_textgen.data.tokenizer_training import EmptyCorpusError, save_tokenizer
    from hf_textgen.summary import command, format_summary

    args, data_args = parsed
    vocab_size = args.vocab_size if args.vocab_size is not None else DEFAULT_VOCAB_SIZES[args.tokenizer_type]
    if vocab_size is not None and vocab_size < minimum_vocab_size(args.tokenizer_type):
        raise UserError(
            f"--vocab_size {vocab_size} is too small for --tokenizer_type {args.tokenizer_type}: use at least "
            f"{minimum_vocab_size(args.tokenizer_type)}"
        )
    if args.min_frequency < 1:
        raise UserError(f"--min_frequency must be at least 1, got {args.min_frequency}")
    start = time.perf_counter()
    with atomic_output_dir(args.output_dir, overwrite=args.overwrite_output_dir) as folder:
        raw_datasets = load_raw_datasets(data_args)
        train = raw_datasets["train"]
        if data_args.max_train_samples is not None:
            limit = data_args.max_train_samples
            train = (
                train.take(limit)
                if isinstance(train, IterableDataset)
                else train.select(range(min(limit, len(train))))
            )
        try:
            validation_batches = _batches(raw_datasets["validation"], _MAX_VALIDATION_CHARS)
            validation_texts = [text for batch in validation_batches for text in batch]
            tokenizer = train_tokenizer(
                _batches(train),
                tokenizer_type=args.tokenizer_type,
                vocab_size=vocab_size,
                min_frequency=args.min_frequency,
            )
        except EmptyCorpusError:
            if validation_texts:
                # Only a stream of a single document gets here: its one document went to validation.
                raise UserError(
                    "no training text is left once the validation document is held out (the stream has one "
                    "document); pass a --validation_file, or drop --streaming to split the document itself"
                ) from None
            raise UserError("the training data holds no text; give a file with text in it") from None
        except UserError:
            raise  # a damaged compressed file, found as the stream reached it
        except Exception as error:
            # Streaming reads the files only now, so a bad byte deep in one surfaces here.
            files = expand_data_files(data_args.train_file) if data_args.train_file else []
            if data_args.validation_file:
                files += expand_data_files(data_args.validation_file, "--validation_file")
            user_error = encoding_user_error(error, files)
            if user_error is None:
                raise
            raise user_error from None
        if len(tokenizer) == len(tokenizer.all_special_tokens):  # char / word: every text would be <unk>
            unit = "character" if args.tokenizer_type == "char" else "word"
            raise UserError(
                f"the {args.tokenizer_type} tokenizer learned no {unit} seen at least {args.min_frequency} times; "
                "give more text or --min_frequency 1"
            )
        save_tokenizer(tokenizer, folder)
    seconds = time.perf_counter() - start

    num_chars = sum(map(len, validation_texts))
    num_tokens = sum(map(len, tokenizer(validation_texts, add_special_tokens=False)["input_ids"])) if num_chars else 0
    ratio = f"{num_chars / num_tokens:.2f} chars/token on the validation text" if num_tokens else "no validation text"
    print(
        f"trained a {args.tokenizer_type} tokenizer with {len(tokenizer)} tokens in {seconds:.1f}s; {ratio}; "
        f"saved to {args.output_dir}"
    )
    # The next step trains a model with this tokenizer on the same text.
    data_flags = []
    if data_args.dataset_name:
        data_flags += ["--dataset_name", data_args.dataset_name]
        if data_args.dataset_config_name:
            data_flags += ["--dataset_config_name", data_args.dataset_config_name]
    elif data_args.train_file:
        data_flags += ["--train_file", *data_args.train_file]
    if data_args.validation_file:
        data_flags += ["--validation_file", data_args.validation_file]
    # ... read the same way: the same column, the same documents.
    if data_args.text_column_name:
        data_flags += ["--text_column_name", data_args.text_column_name]
    if data_args.sample_by != "auto":
        data_flags += ["--sample_by", data_args.sample_by]
    if not data_args.keep_linebreaks:
        data_flags.append("--no_keep_linebreaks")
    if data_args.streaming:
        data_flags += ["--streaming", "--max_steps", "STEPS"]  # a stream has no length: pretrain needs a step count
    rows = [("tokenizer", f"{args.output_dir}/  (AutoTokenizer.from_pretrained({str(args.output_dir)!r}))")]
    pretrain = ["hf-textgen", "pretrain", "--tokenizer_name", args.output_dir, *data_flags, "--output_dir", "out"]
    print(format_summary(rows, [command(*pretrain)]))
    return 0
