"""`run_evaluate`: perplexity of a saved model per token, word, byte and character (what `hf-textgen evaluate` and
the demo run).

Causal LMs (RNN, Transformer) are scored document by document in lm-evaluation-harness's rolling windows (`stride`
for more context per token), a whole text file being one document by default; encoder-decoder models are scored
teacher-forced on the target side of (source, target) pairs. Results are returned and, with `output_dir`, written
as `eval_results.json`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from hf_textgen.data.arguments import DataArguments
from hf_textgen.errors import UserError, first_line

RESULTS_NAME = "eval_results.json"


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


def _causal_lm_texts(eval_args: EvaluateArguments, data_args: DataArguments) -> list[str]:
    from hf_textgen.data import load_raw_datasets

    if data_args.sample_by == "auto":
        # Each document is scored on its own (as lm-eval does), so by default a text file is one document: the
        # context flows across its paragraphs, as the text was written. --sample_by article scores each WikiText
        # article on its own (lm-eval's wikitext task), paragraph or line each part.
        data_args = dataclasses.replace(data_args, sample_by="document")
    dataset = _split_of(load_raw_datasets(data_args, extra_splits=(eval_args.split,)), eval_args.split)
    texts = []
    for row in dataset:
        texts.append(row["text"])
        if data_args.max_eval_samples is not None and len(texts) >= data_args.max_eval_samples:
            break
    return texts


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
    if config.is_encoder_decoder:
        sources, targets = _seq2seq_pairs(eval_args, data_args)
    else:
        # The window defaults to the model's whole context (the most each token can see), 1024 at most.
        block_size = resolve_block_size(data_args.block_size, limit, default=MAX_DEFAULT_CONTEXT)
        if eval_args.stride is not None and eval_args.stride > block_size:
            raise UserError(f"--stride {eval_args.stride} is larger than --block_size {block_size}")
        texts = _causal_lm_texts(eval_args, data_args)
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
        saved = {**results, "model_name_or_path": eval_args.model_name_or_path, "data": _describe(data_args)}
        write_results(saved, eval_args.output_dir)
    return results
