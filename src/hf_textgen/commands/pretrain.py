"""`hf-textgen pretrain`: causal-LM pretraining with the Trainer (flags, or one .yaml / .json file)."""

from __future__ import annotations

from hf_textgen.data import DataArguments
from hf_textgen.summary import training_summary
from hf_textgen.training.arguments import ModelArguments, parse_arguments
from hf_textgen.training.pretrain import PretrainingArguments, run_pretrain


def main(argv: list[str] | None = None, summary: bool = True) -> int:
    """Parse `ModelArguments`, `DataArguments` and `PretrainingArguments`, then pretrain."""
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, DataArguments, PretrainingArguments), argv, prog="hf-textgen pretrain"
    )
    metrics = run_pretrain(model_args, data_args, training_args)
    if summary and training_args.do_train and training_args.process_index == 0:
        print(training_summary(training_args.output_dir, metrics, "causal_lm"))
    return 0
