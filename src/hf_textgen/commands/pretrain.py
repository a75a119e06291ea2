"""`hf-textgen pretrain`: causal-LM pretraining with the Trainer (flags, or one .yaml / .json file)."""

from __future__ import annotations

from hf_textgen.data.arguments import DataArguments
from hf_textgen.training.arguments import ModelArguments, PretrainingArguments, parse_arguments


def parse_args(argv: list[str] | None = None) -> tuple:
    """`ModelArguments`, `DataArguments` and `PretrainingArguments` from the flags or one .yaml / .json file."""
    return parse_arguments((ModelArguments, DataArguments, PretrainingArguments), argv, prog="hf-textgen pretrain")


def run(args: tuple, summary: bool = True) -> int:
    """Pretrain with the parsed arguments; with `summary`, end with what was made and the next command."""
    from hf_textgen.summary import training_summary
    from hf_textgen.training.pretrain import run_pretrain

    model_args, data_args, training_args = args
    metrics = run_pretrain(model_args, data_args, training_args)
    if summary and training_args.do_train and training_args.process_index == 0:
        print(training_summary(training_args.output_dir, metrics, "causal_lm"))
    return 0


def main(argv: list[str] | None = None, summary: bool = True) -> int:
    """Parse the arguments, then pretrain."""
    return run(parse_args(argv), summary=summary)
