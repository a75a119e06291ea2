"""Training with the transformers `Trainer`: causal-LM pretraining and supervised fine-tuning.

`run_pretrain` / `run_finetune` are what `hf-textgen pretrain` / `finetune` (and `scripts/*.py` under `torchrun` or
`accelerate launch`) run after `parse_arguments` has read the flags or a YAML / JSON file. Both hand a `Task`
(what the task's data, model class, collator and metrics are) to the one runner, `run_task`.
"""

from __future__ import annotations

from hf_textgen._lazy import lazy_attributes

# name -> the module that defines it: imported on first use (see hf_textgen._lazy).
_LAZY = {
    "FinetuneArguments": "hf_textgen.training.arguments",
    "ModelArguments": "hf_textgen.training.arguments",
    "Seq2SeqTrainingArguments": "hf_textgen.training.arguments",
    "TrainingArguments": "hf_textgen.training.arguments",
    "parse_arguments": "hf_textgen.training.arguments",
    "FINETUNE_DEFAULTS": "hf_textgen.training.finetune",
    "FinetuningArguments": "hf_textgen.training.finetune",
    "PRETRAIN_DEFAULTS": "hf_textgen.training.arguments",
    "PretrainingArguments": "hf_textgen.training.arguments",
    "finetune_task": "hf_textgen.training.finetune",
    "run_finetune": "hf_textgen.training.finetune",
    "CausalLMTask": "hf_textgen.training.pretrain",
    "run_pretrain": "hf_textgen.training.pretrain",
    "Task": "hf_textgen.training.runner",
    "run_task": "hf_textgen.training.runner",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
