"""`hf-textgen pretrain`: causal-LM pretraining with the Trainer (flags, or one .yaml / .json file)."""

from __future__ import annotations

from hf_textgen.data import DataArguments
from hf_textgen.training.arguments import ModelArguments, parse_arguments
from hf_textgen.training.pretrain import PretrainingArguments, run_pretrain


def main(argv: list[str] | None = None) -> int:
    """Parse `ModelArguments`, `DataArguments` and `PretrainingArguments`, then pretrain."""
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, DataArguments, PretrainingArguments), argv, prog="hf-textgen pretrain"
    )
    run_pretrain(model_args, data_args, training_args)
    return 0
