"""`hf-textgen finetune`: supervised fine-tuning (causal_lm, prompt_completion, classification or seq2seq)."""

from __future__ import annotations

from hf_textgen.data import DataArguments
from hf_textgen.training.arguments import FinetuneArguments, ModelArguments, Seq2SeqTrainingArguments, parse_arguments
from hf_textgen.training.finetune import FINETUNE_DEFAULTS, run_finetune
from hf_textgen.training.pretrain import PRETRAIN_DEFAULTS

# Seq2SeqTrainingArguments is TrainingArguments plus the generation-during-eval flags --task seq2seq uses.
DATACLASS_TYPES = (ModelArguments, DataArguments, FinetuneArguments, Seq2SeqTrainingArguments)


def parse_finetune_arguments(argv: list[str] | None = None) -> tuple:
    """Parse the four argument groups with the fine-tuning defaults.

    A model trained from scratch (`--model_type`, no `--model_name_or_path`) gets pretraining's learning rate
    by default: fine-tuning's gentle 1e-4 barely moves freshly initialised weights in a few hundred steps.
    An explicit `--learning_rate` always wins.
    """
    parsed = parse_arguments(DATACLASS_TYPES, argv, defaults=FINETUNE_DEFAULTS, prog="hf-textgen finetune")
    if parsed[0].model_name_or_path is None:
        from_scratch = {**FINETUNE_DEFAULTS, "learning_rate": PRETRAIN_DEFAULTS["learning_rate"]}
        parsed = parse_arguments(DATACLASS_TYPES, argv, defaults=from_scratch, prog="hf-textgen finetune")
    return parsed


def main(argv: list[str] | None = None) -> int:
    """Parse model, data, fine-tuning and training arguments (flags or one .yaml / .json file), then fine-tune."""
    model_args, data_args, finetune_args, training_args = parse_finetune_arguments(argv)
    run_finetune(model_args, data_args, finetune_args, training_args)
    return 0
