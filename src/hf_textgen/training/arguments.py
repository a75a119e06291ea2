"""Argument dataclasses of `hf-textgen pretrain` / `finetune`, and the parser that reads flags or one YAML/JSON file.

The names follow the transformers `run_clm.py` example (`ModelArguments`) plus every `TrainingArguments` flag,
so a command line written for the transformers examples works here unchanged.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from dataclasses import dataclass, field
from typing import Any

import transformers

from hf_textgen.cpu_features import warn_if_half_precision_is_emulated
from hf_textgen.data.arguments import VOCAB_SIZE_DEFAULTS_HELP
from hf_textgen.errors import UserError
from hf_textgen.parsing import parse_arguments  # noqa: F401  (re-exported: the training commands' parser)

# Short names accepted by `--model_type`, next to the full registered model_type.
MODEL_TYPE_ALIASES = {
    "rnn": "hf_textgen_rnn",
    "transformer": "hf_textgen_transformer",
    "seq2seq": "hf_textgen_seq2seq",
}

FINETUNE_TASKS = ("causal_lm", "prompt_completion", "classification", "seq2seq")


@dataclass
class ModelArguments:
    """Which model to train (from scratch or continued) and which tokenizer it reads."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "A model folder or Hub id to continue training from. Leave unset to train from scratch."},
    )
    model_type: str | None = field(
        default=None,
        metadata={
            "help": "Model family when training from scratch: rnn, transformer, seq2seq or a full model_type "
            "(e.g. hf_textgen_transformer). Defaults to transformer for pretraining from scratch."
        },
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Config fields to set when training from scratch, e.g. "
            "'hidden_size=64,num_hidden_layers=2,cell_type=gru'. They are applied on top of a small preset."
        },
    )
    config_name: str | None = field(
        default=None, metadata={"help": "A config folder/file or Hub id to build the model from (from scratch)."}
    )
    tokenizer_name: str | None = field(
        default=None,
        metadata={
            "help": "A tokenizer folder or Hub id. Without one (and without --model_name_or_path) a tokenizer is "
            "trained on the training data first and saved with the model."
        },
    )
    tokenizer_type: str = field(
        default="bpe",
        metadata={"help": "Kind of tokenizer to train when none is given: bpe (byte-level), char or word."},
    )
    tokenizer_vocab_size: int | None = field(
        default=None,
        metadata={
            "help": "Vocabulary size of the tokenizer trained when none is given. "
            f"Default: {VOCAB_SIZE_DEFAULTS_HELP}."
        },
    )
    tokenizer_min_frequency: int = field(
        default=2, metadata={"help": "Minimum pair frequency for a merge in the trained tokenizer."}
    )
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where to cache models and datasets downloaded from the Hub."}
    )
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a Hub model."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models and datasets."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow model folders whose code is not installed (auto_map)."}
    )

    def __post_init__(self):
        if self.config_overrides is not None and (self.config_name is not None or self.model_name_or_path):
            raise UserError(
                "--config_overrides only applies to a model trained from scratch with --model_type; "
                "drop --config_name / --model_name_or_path or drop --config_overrides"
            )

    @property
    def resolved_model_type(self) -> str | None:
        """`--model_type` with the short aliases (rnn, transformer, seq2seq) expanded."""
        if self.model_type is None:
            return None
        return MODEL_TYPE_ALIASES.get(self.model_type, self.model_type)


@dataclass
class FinetuneArguments:
    """What `hf-textgen finetune` trains for, and which columns of the data it reads."""

    task: str = field(default="causal_lm", metadata={"help": f"The fine-tuning task: {', '.join(FINETUNE_TASKS)}."})
    prompt_column: str = field(default="prompt", metadata={"help": "prompt_completion: the prompt column."})
    completion_column: str = field(
        default="completion", metadata={"help": "prompt_completion: the completion column (the only tokens scored)."}
    )
    label_column_name: str = field(default="label", metadata={"help": "classification: the label column."})
    source_column: str = field(default="source", metadata={"help": "seq2seq: the input text column."})
    target_column: str = field(default="target", metadata={"help": "seq2seq: the output text column."})
    max_seq_length: int | None = field(
        default=None,
        metadata={
            "help": "prompt_completion / classification: truncate examples to this many tokens "
            "(default: --block_size, else the model's max_position_embeddings up to 1024, else 512)."
        },
    )
    max_source_length: int = field(default=256, metadata={"help": "seq2seq: truncate inputs to this many tokens."})
    max_target_length: int = field(default=128, metadata={"help": "seq2seq: truncate targets to this many tokens."})
    layerwise_lr_decay: float | None = field(
        default=None,
        metadata={
            "help": "Layer-wise learning rates (ULMFiT): the head trains at --learning_rate and each layer below at "
            "this factor times the one above, down to the embeddings. Default: 0.5 for --task classification from a "
            "pretrained folder (not with --use_peft), 1 (one rate for all) otherwise."
        },
    )
    classifier_pooling: str | None = field(
        default=None,
        metadata={
            "help": "classification: summarise a text by its last token's hidden state ('last') or the mean over "
            "its tokens ('mean'). Default: 'mean' for a new head on a pretrained LM, else the config's own."
        },
    )

    def __post_init__(self):
        if self.task not in FINETUNE_TASKS:
            raise UserError(f"unknown --task {self.task!r}; choose one of: {', '.join(FINETUNE_TASKS)}")
        if self.layerwise_lr_decay is not None and not 0 < self.layerwise_lr_decay <= 1:
            raise UserError(f"--layerwise_lr_decay must be in (0, 1], got {self.layerwise_lr_decay}")
        if self.classifier_pooling not in (None, "last", "mean"):
            raise UserError(f"--classifier_pooling must be 'last' or 'mean', got {self.classifier_pooling!r}")


def _accelerator_available() -> bool:
    """Whether torch sees a GPU-like device (CUDA/ROCm, Intel XPU, Apple MPS, Ascend NPU)."""
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return True
    return any(
        getattr(torch, name, None) is not None and getattr(torch, name).is_available() for name in ("xpu", "npu")
    )


def warn_if_fsdp_runs_as_ddp(training_args: transformers.TrainingArguments) -> None:
    """Print one warning (main process) when `accelerate launch` asks for FSDP but the run is on the CPU.

    `accelerate launch --config_file scripts/configs/fsdp.yaml` sets `ACCELERATE_USE_FSDP=true`, but Accelerate
    1.15 takes up its FSDP plugin only on GPU-like devices: on the CPU (`--use_cpu`, the default without an
    accelerator) the Trainer silently runs DDP, every rank holding the whole model. See the README's "What runs
    where".
    """
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":  # Accelerate's own test of the variable
        return
    if not (training_args.use_cpu or not _accelerator_available()) or training_args.process_index != 0:
        return
    print(
        "warning: accelerate asks for FSDP (ACCELERATE_USE_FSDP) but this run is on the CPU, where Accelerate runs it "
        'as DDP: nothing is sharded, every rank holds the whole model. See README.md, "What runs where".',
        file=sys.stderr,
        flush=True,
    )


@dataclass
class TrainingArguments(transformers.TrainingArguments):
    """transformers' `TrainingArguments`, plus `--overwrite_output_dir` as the transformers examples know it.

    `output_dir` is required (the folder the results are written to), and `use_cpu` defaults to True on a machine
    without an accelerator: transformers refuses `--bf16` without it (though bf16 autocast on the CPU is exactly
    what is asked for), and under torchrun it is what makes the Trainer run real gloo data parallelism instead of N
    independent copies.
    """

    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start afresh in a non-empty --output_dir (deleting it). Without it, an output_dir with "
            "checkpoints resumes from the last complete one, and one without checkpoints is an error."
        },
    )
    use_cpu: bool = field(
        # Decided once, when the class is defined: HfArgumentParser reads plain defaults only (not factories).
        default=not _accelerator_available(),
        metadata={"help": "Train on the CPU. Default: true on a machine without a GPU (or other accelerator)."},
    )

    def __post_init__(self):
        if not self.output_dir:
            raise UserError("--output_dir is required: the folder the results are written to")
        super().__post_init__()
        if self.use_cpu:
            # Emulated bf16/fp16 on a CPU without the instructions runs many times slower: say so once, with the fix.
            warn_if_half_precision_is_emulated(self.bf16, self.fp16)


@dataclass
class Seq2SeqTrainingArguments(transformers.Seq2SeqTrainingArguments, TrainingArguments):
    """transformers' `Seq2SeqTrainingArguments` (generation during eval) with our `TrainingArguments` additions."""


def with_defaults(base: type, name: str, module: str, defaults: dict[str, Any], doc: str) -> type:
    """A subclass of the argument dataclass `base` whose fields default to `defaults` (as TRL's configs do).

    The defaults then show in `--help` and apply alike to flags and to `.yaml` / `.json` argument files.

    Args:
        base: An argument dataclass, e.g. `TrainingArguments`.
        name: The subclass's name; assign it to a module-level variable of that name in `module`, so a saved
            `training_args.bin` unpickles.
        module: The module that holds it (`__name__`).
        defaults: Field name -> default value (or a whole `dataclasses.field`, to also change its help), for
            fields of `base`.
        doc: The subclass's docstring.
    """
    hints = typing.get_type_hints(base)
    fields = []
    for key, value in defaults.items():
        if not isinstance(value, dataclasses.Field):
            value = field(default=value, metadata=base.__dataclass_fields__[key].metadata)
        fields.append((key, hints[key], value))
    cls = dataclasses.make_dataclass(name, fields, bases=(base,), namespace={"__doc__": doc, "__module__": module})
    return cls


# ---------------------------------------------------------------------------------------------------------------
# Each command's defaults
# ---------------------------------------------------------------------------------------------------------------

# `hf-textgen pretrain` defaults that differ from `TrainingArguments`: a small model trained from scratch wants a
# larger learning rate than fine-tuning, and the loss curves want frequent logging and evaluation.
# Training and evaluation are on unless switched off (`--do_train false` evaluates a model alone).
PRETRAIN_DEFAULTS = {
    "do_train": True,
    "do_eval": True,
    "learning_rate": 1e-3,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "weight_decay": 0.1,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "num_train_epochs": 1.0,
    "logging_steps": 10,
    "logging_first_step": True,
    "eval_strategy": "steps",
    "eval_steps": 100,
    "save_steps": 200,
    "save_total_limit": 2,
    "ddp_find_unused_parameters": False,  # every parameter of a language model takes part in the loss
}
PretrainingArguments = with_defaults(
    TrainingArguments,
    "PretrainingArguments",
    __name__,
    PRETRAIN_DEFAULTS,
    "`TrainingArguments` with `hf-textgen pretrain`'s defaults (`PRETRAIN_DEFAULTS`).",
)
