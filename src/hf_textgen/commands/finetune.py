"""`hf-textgen finetune`: supervised fine-tuning (causal_lm, prompt_completion, classification or seq2seq)."""

from __future__ import annotations

from hf_textgen.data import DataArguments
from hf_textgen.training.arguments import FinetuneArguments, ModelArguments, Seq2SeqTrainingArguments, parse_arguments
from hf_textgen.training.finetune import FINETUNE_DEFAULTS, run_finetune


def main(argv: list[str] | None = None) -> int:
    """Parse model, data, fine-tuning and training arguments (flags or one .yaml / .json file), then fine-tune."""
    # Seq2SeqTrainingArguments is TrainingArguments plus the generation-during-eval flags --task seq2seq uses.
    dataclass_types = (ModelArguments, DataArguments, FinetuneArguments, Seq2SeqTrainingArguments)
    model_args, data_args, finetune_args, training_args = parse_arguments(
        dataclass_types, argv, defaults=FINETUNE_DEFAULTS, prog="hf-textgen finetune"
    )
    run_finetune(model_args, data_args, finetune_args, training_args)
    return 0
