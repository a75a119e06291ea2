"""Training with the transformers `Trainer`: causal-LM pretraining and supervised fine-tuning.

`run_pretrain` / `run_finetune` are what `hf-textgen pretrain` / `finetune` (and `scripts/*.py` under `torchrun` or
`accelerate launch`) run after `parse_arguments` has read the flags or a YAML / JSON file.
"""

from hf_textgen.training.arguments import (
    FinetuneArguments,
    ModelArguments,
    Seq2SeqTrainingArguments,
    TrainingArguments,
    parse_arguments,
)
from hf_textgen.training.finetune import FINETUNE_DEFAULTS, run_finetune
from hf_textgen.training.pretrain import PRETRAIN_DEFAULTS, run_pretrain

__all__ = [
    "FINETUNE_DEFAULTS",
    "PRETRAIN_DEFAULTS",
    "FinetuneArguments",
    "ModelArguments",
    "Seq2SeqTrainingArguments",
    "TrainingArguments",
    "parse_arguments",
    "run_finetune",
    "run_pretrain",
]
