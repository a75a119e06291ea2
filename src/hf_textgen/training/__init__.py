"""Training with the transformers `Trainer`: causal-LM pretraining and supervised fine-tuning.

`run_pretrain` / `run_finetune` are what `hf-textgen pretrain` / `finetune` (and `scripts/*.py` under `torchrun` or
`accelerate launch`) run after `parse_arguments` has read the flags or a YAML / JSON file. Both hand a `Task`
(what the task's data, model class, collator and metrics are) to the one runner, `run_task`.
"""

from __future__ import annotations

import importlib

# name -> the module that defines it: imported on first use, so that importing one light module of this
# package (e.g. its argument dataclasses, for `hf-textgen <command> --help`) does not import all of it.
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


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
