"""`run_evaluate`: perplexity of a saved model per token, word, byte and character (what `hf-textgen evaluate` and
the demo run).

Causal LMs (RNN, Transformer) are scored document by document in lm-evaluation-harness's rolling windows (`stride`
for more context per token); encoder-decoder models are scored teacher-forced on the target side of (source, target)
pairs. Results are returned and, with `output_dir`, written as `eval_results.json`.

What a document is in the evaluation text follows `--sample_by`; by default (`auto`) the text is read the way the
model's training text was read, as its folder records it (`training_data.json`'s `text_reading`, written by
`pretrain` and `finetune --task causal_lm`): a model pretrained on paragraphs, each followed by EOS, never saw a
blank line, and scoring one as two newlines would cost it several nats each. A folder without that record (written
before it existed, or by another library) is read as lm-evaluation-harness reads text: each file one document.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hf_textgen.data.arguments import DataArguments
from hf_textgen.errors import UserError, first_line

logger = logging.getLogger(__name__)

RESULTS_NAME = "eval_results.json"
# `--sample_by` as evaluate reads it, for `hf-textgen evaluate --help` (`DataArguments` describes pretrain's).
SAMPLE_BY_HELP = (
    "What one scored document of a text file is: 'paragraph', 'line', 'article' (a WikiText article) or 'document' "
    "(the whole file, as lm-evaluation-harness scores it). 'auto': the reading the model's training text had, as its "
    "folder records it (training_data.json; for a text file as pretrain would read it: paragraph, or line for a file "
    "of one example per line), else document. Each document is scored after an EOS."
)


@dataclass
class EvaluateArguments:
    """What to evaluate and how (the data itself comes from `DataArguments`)."""

    model_name_or_path: str = field(
        default=None, metadata={"help": "The model folder to evaluate (e.g. written by hf-textgen pretrain)."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "A tokenizer folder; default: the model's."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow a model folder whose code is not installed (auto_map)."}
    )
    stride: int | None = field(
        default=None,
        metadata={
            "help": "Sliding-window stride in tokens (1 <= stride <= block_size). Each window scores only the tokens "
            "the previous one did not, so a smaller stride gives every token more context at the cost of "
            "block_size/stride times the compute. Default: block_size (non-overlapping windows)."
        },
    )
    per_device_eval_batch_size: int = field(default=8, metadata={"help": "Windows (or pairs) per forward pass."})
    bf16: bool = field(default=False, metadata={"help": "Run the forward passes under bfloat16 autocast."})
    output_dir: str | None = field(
        default=None, metadata={"help": "Folder that receives eval_results.json (created if needed)."}
    )
    split: str = field(default="validation", metadata={"help": "Which split of the data to score."})
    source_column: str = field(default="source", metadata={"help": "seq2seq: the input text column."})
    target_column: str = field(default="target", metadata={"help": "seq2seq: the output text column."})
    max_source_length: int = field(default=256, metadata={"help": "seq2seq: truncate inputs to this many tokens."})
    max_target_length: int = field(default=128, metadata={"help": "seq2seq: truncate targets to this many tokens."})

    def __post_init__(self):
        if self.per_device_eval_batch_size < 1:
            raise ValueError(f"per_device_eval_batch_size must be >= 1, got {self.per_device_eval_batch_size}")
        if self.stride is not None and self.stride < 1:
            raise ValueError(f"stride must be >= 1, got {self.stride}")
        for name in ("max_source_length", "max_target_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def _split_of(dataset_dict, split: str):
    if split not in dataset_dict:
        raise UserError(f"the data has no {split!r} split (splits: {', '.join(dataset_dict)}); fix --split")
    return dataset_dict[split]


@dataclass(frozen=True)
class _Reading:
    """How the evaluation text is cut into documents: the `sample_by` given to the loader, and why it was chosen."""

    sample_by: str
    chosen_by: str  # "--sample_by", "training_data.json" or "lm-evaluation-harness default"
    why: str
    keep_linebreaks: bool | None = None  # as recorded for training; None keeps --keep_linebreaks


def _choose_reading(eval_args: EvaluateArguments, data_args: DataArguments) -> _Reading:
    """An explicit `--sample_by` wins; `auto` follows the model's recorded training reading, else whole documents."""
    from hf_textgen.hub.training_facts import recorded_text_reading

    if data_args.sample_by != "auto":
        return _Reading(data_args.sample_by, "--sample_by", f"as --sample_by {data_args.sample_by} asks")
    recorded = recorded_text_reading(eval_args.model_name_or_path)
    if recorded is None:
        return _Reading(
            "document",
            "lm-evaluation-harness default",
            f"each file whole, as lm-evaluation-harness scores text: {eval_args.model_name_or_path} records no "
            "reading of plain training text (training_data.json); pass --sample_by paragraph or line if it was "
            "trained on text cut that way",
        )
    eos = ", each followed by EOS" if recorded.get("eos_after_each_document") else ""
    read_by = recorded.get("read_by", recorded["sample_by"])
    # Lines trained without their line break are scored without it too (a newline the model never saw).
    keep_linebreaks = recorded.get("keep_linebreaks") if isinstance(recorded.get("keep_linebreaks"), bool) else None
    if keep_linebreaks is False:
        eos += ", lines without their line breaks"
    return _Reading(
        recorded["sample_by"],
        "training_data.json",
        f"following the model's training text (training_data.json: --sample_by {recorded['sample_by']}, read by "
        f"{read_by}{eos}); pass --sample_by document to score each file whole, as lm-evaluation-harness does",
        keep_linebreaks,
    )


def _log_reading(reading: _Reading, text_reading) -> None:
    """The one line saying how the evaluation text is read, and why."""
    from hf_textgen.data.loading import shown_sources

    if text_reading is None:  # rows of json / csv / a dataset: each row is a document, whatever sample_by says
        logger.info("scoring each row of the evaluation data as one document")
        return
    # The loader's own reasons say why `auto` chose paragraph or line for each file; an explicit reading needs none.
    how = text_reading.describe() if reading.sample_by == "auto" else f"by {reading.sample_by}"
    logger.info("evaluating %s %s, %s", shown_sources(text_reading.sources), how, reading.why)


def _causal_lm_texts(eval_args: EvaluateArguments, data_args: DataArguments) -> tuple[list[str], dict]:
    """The documents to score, and the `data` entries of `eval_results.json` that say how they were read."""
    from hf_textgen.data import load_raw_datasets

    reading = _choose_reading(eval_args, data_args)
    data_args = dataclasses.replace(data_args, sample_by=reading.sample_by)
    if reading.keep_linebreaks is not None:
        data_args = dataclasses.replace(data_args, keep_linebreaks=reading.keep_linebreaks)
    readings = {}
    raw = load_raw_datasets(data_args, extra_splits=(eval_args.split,), readings=readings, log_readings=False)
    dataset = _split_of(raw, eval_args.split)
    text_reading = readings.get(eval_args.split)
    _log_reading(reading, text_reading)
    texts = []
    for row in dataset:
        texts.append(row["text"])
        if data_args.max_eval_samples is not None and len(texts) >= data_args.max_eval_samples:
            break
    described = {"reading_chosen_by": reading.chosen_by}
    if text_reading is not None:
        described["read_by"] = text_reading.documents
    return texts, described


def _seq2seq_pairs(eval_args: EvaluateArguments, data_args: DataArguments) -> tuple[list[str], list[str]]:
    from hf_textgen.data.pairs import SOURCE, TARGET, load_pairs

    pairs = load_pairs(
        data_args,
        eval_args.source_column,
        eval_args.target_column,
        evaluation_only=True,
        extra_splits=(eval_args.split,),
    )
    dataset = _split_of(pairs, eval_args.split)
    if data_args.max_eval_samples is not None:
        dataset = dataset.select(range(min(data_args.max_eval_samples, len(dataset))))
    return list(dataset[SOURCE]), list(dataset[TARGET])


def write_results(results: dict, output_dir: str | os.PathLike) -> Path:
    """Write `eval_results.json` into `output_dir` atomically (never a half-written file).

    Raises:
        UserError: `output_dir` exists and is not a folder.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"--output_dir {output_dir} exists and is not a folder; choose another --output_dir")
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / RESULTS_NAME
    with tempfile.NamedTemporaryFile("w", dir=output_dir, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        json.dump(results, handle, indent=2, sort_keys=True)
        handle.write("\n")
    os.replace(handle.name, path)
    return path


def format_results(results: dict) -> str:
    """The metrics as the Trainer prints them: one `name = value` line each."""
    width = max(len(key) for key in results)
    lines = ["***** eval metrics *****"]
    for key, value in results.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"  {key:<{width}} = {shown}")
    return "\n".join(lines)


def _describe(data_args: DataArguments) -> dict:
    fields = ("dataset_name", "dataset_config_name", "validation_file", "max_eval_samples", "sample_by")
    described = {key: value for key, value in asdict(data_args).items() if key in fields and value is not None}
    return described or {"bundled_corpus": "validation"}


def run_evaluate(eval_args: EvaluateArguments, data_args: DataArguments, progress: bool = True) -> dict:
    """Evaluate the model named in `eval_args` on the data named in `data_args`; with `output_dir`, save the results.

    Args:
        eval_args: The model, window and batch settings (see `EvaluateArguments`).
        data_args: The text or pairs (the bundled validation text when none is named).
        progress: Show a progress bar.

    Returns:
        The results: `eval_loss`, `perplexity`, `num_tokens`, `word_perplexity`, `num_words` (and, for causal LMs,
        `byte_perplexity`, `bits_per_byte`, `num_bytes`, `character_perplexity`, `loss_per_character`,
        `num_characters`, `block_size`, `stride`; no word figures for text in scripts without spaces).

    Raises:
        UserError: A model, flag or data the evaluation cannot use; refused before any weights are loaded where
            possible.
    """
    from hf_textgen.data.processing import MAX_DEFAULT_CONTEXT, resolve_block_size
    from hf_textgen.evaluation.language_modeling import evaluate_causal_lm, evaluate_seq2seq
    from hf_textgen.generation import load_model_and_tokenizer, load_model_config, max_positions

    if not eval_args.model_name_or_path:
        raise UserError("--model_name_or_path is required: the model folder to evaluate")
    config = load_model_config(eval_args.model_name_or_path, eval_args.trust_remote_code)
    limit = max_positions(config)
    reading = {}  # how causal-LM text was cut into documents, for eval_results.json
    if config.is_encoder_decoder:
        sources, targets = _seq2seq_pairs(eval_args, data_args)
    else:
        # The window defaults to the model's whole context (the most each token can see), 1024 at most.
        block_size = resolve_block_size(data_args.block_size, limit, default=MAX_DEFAULT_CONTEXT)
        if eval_args.stride is not None and eval_args.stride > block_size:
            raise UserError(f"--stride {eval_args.stride} is larger than --block_size {block_size}")
        texts, reading = _causal_lm_texts(eval_args, data_args)
    model, tokenizer = load_model_and_tokenizer(
        eval_args.model_name_or_path, eval_args.tokenizer_name, eval_args.trust_remote_code
    )
    try:
        if config.is_encoder_decoder:
            results = evaluate_seq2seq(
                model,
                tokenizer,
                sources,
                targets,
                max_source_length=min(eval_args.max_source_length, limit or eval_args.max_source_length),
                max_target_length=min(eval_args.max_target_length, limit or eval_args.max_target_length),
                batch_size=eval_args.per_device_eval_batch_size,
                bf16=eval_args.bf16,
                progress=progress,
            )
        else:
            results = evaluate_causal_lm(
                model,
                tokenizer,
                texts,
                block_size=block_size,
                stride=eval_args.stride,
                batch_size=eval_args.per_device_eval_batch_size,
                bf16=eval_args.bf16,
                progress=progress,
            )
    except ValueError as error:
        # Data the metric cannot score (too short, no words): the user's input, not a bug.
        raise UserError(first_line(error)) from None
    if eval_args.output_dir:
        data = {**_describe(data_args), **reading}
        saved = {**results, "model_name_or_path": eval_args.model_name_or_path, "data": data}
        write_results(saved, eval_args.output_dir)
    return results
