"""`hf-textgen finetune`: supervised fine-tuning (causal_lm, prompt_completion, classification or seq2seq)."""

from __future__ import annotations

from hf_textgen.data import DataArguments
from hf_textgen.summary import training_summary
from hf_textgen.training.arguments import FinetuneArguments, ModelArguments, parse_arguments
from hf_textgen.training.finetune import (
    FinetuningArguments,
    finetune_learning_rate,
    finetune_recipe,
    run_finetune,
)
from hf_textgen.training.lora import PeftArguments

DATACLASS_TYPES = (ModelArguments, DataArguments, FinetuneArguments, FinetuningArguments, PeftArguments)


def parse_finetune_arguments(argv: list[str] | None = None) -> tuple:
    """Parse the five argument groups (flags or one .yaml / .json file) with the fine-tuning defaults.

    Returns:
        `(model_args, data_args, finetune_args, training_args, peft_args)`.
    """
    model_args, data_args, finetune_args, training_args, peft_args = parse_arguments(
        DATACLASS_TYPES, argv, prog="hf-textgen finetune"
    )
    finetune_recipe(model_args, finetune_args, peft_args)
    finetune_learning_rate(model_args, training_args, finetune_args.layerwise_lr_decay)
    return model_args, data_args, finetune_args, training_args, peft_args


def main(argv: list[str] | None = None, summary: bool = True) -> int:
    """Parse model, data, fine-tuning, training and LoRA arguments, then fine-tune."""
    model_args, data_args, finetune_args, training_args, peft_args = parse_finetune_arguments(argv)
    metrics = run_finetune(model_args, data_args, finetune_args, training_args, peft_args=peft_args)
    if summary and training_args.do_train and training_args.process_index == 0:
        print(training_summary(training_args.output_dir, metrics, finetune_args.task))
    return 0
