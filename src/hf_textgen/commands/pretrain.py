"""`hf-textgen pretrain`: causal-LM pretraining with the Trainer (flags, or one .yaml / .json file)."""

from __future__ import annotations

from hf_textgen.data import DataArguments
from hf_textgen.training.arguments import ModelArguments, TrainingArguments, parse_arguments
from hf_textgen.training.pretrain import PRETRAIN_DEFAULTS, run_pretrain


def main(argv: list[str] | None = None) -> int:
    """Parse `ModelArguments`, `DataArguments` and `TrainingArguments`, then pretrain."""
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, DataArguments, TrainingArguments),
        argv,
        defaults=PRETRAIN_DEFAULTS,
        prog="hf-textgen pretrain",
    )
    run_pretrain(model_args, data_args, training_args)
    return 0
