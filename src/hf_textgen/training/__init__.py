"""Training with the transformers `Trainer`: causal-LM pretraining and supervised fine-tuning.

`run_pretrain` / `run_finetune` are what `hf-textgen pretrain` / `finetune` (and `scripts/*.py` under `torchrun` or
`accelerate launch`) run after `parse_arguments` has read the flags or a YAML / JSON file. Both hand a `Task`
(what the task's data, model class, collator and metrics are) to the one runner, `run_task`.
"""

from hf_textgen.training.arguments import (
    FinetuneArguments,
    ModelArguments,
    Seq2SeqTrainingArguments,
    TrainingArguments,
    parse_arguments,
)
from hf_textgen.training.finetune import FINETUNE_DEFAULTS, FinetuningArguments, finetune_task, run_finetune
from hf_textgen.training.pretrain import PRETRAIN_DEFAULTS, CausalLMTask, PretrainingArguments, run_pretrain
from hf_textgen.training.runner import Task, run_task

__all__ = [
    "FINETUNE_DEFAULTS",
    "CausalLMTask",
    "PRETRAIN_DEFAULTS",
    "PretrainingArguments",
    "FinetuneArguments",
    "FinetuningArguments",
    "ModelArguments",
    "Seq2SeqTrainingArguments",
    "Task",
    "TrainingArguments",
    "finetune_task",
    "parse_arguments",
    "run_finetune",
    "run_pretrain",
    "run_task",
]
