"""LoRA fine-tuning with PEFT for every family and task (`finetune --use_peft`).

The flags keep PEFT's / TRL's names (`--lora_r`, `--lora_alpha`, `--lora_dropout`, `--lora_target_modules`).
What `all-linear` (the default) adapts, per family:

- Transformer: every linear layer of the decoder blocks (`qkv_proj`, `o_proj`, `gate_up_proj`, `down_proj`); PEFT
  leaves the LM head out.
- Encoder-decoder: every attention projection (self and cross, `q/k/v/o_proj`) and feed-forward layer
  (`fc1`, `fc2`) of the encoder and decoder.
- RNN: its recurrent layers are `nn.LSTM` / `nn.GRU` / `nn.RNN` modules whose weights are plain parameters, not
  linear layers, so `all-linear` would find nothing but the head. It adapts the input-to-hidden and
  hidden-to-hidden matrices of every layer (`weight_ih_l0`, `weight_hh_l0`, ...) through PEFT's
  `target_parameters` instead (PEFT applies no dropout there, so `--lora_dropout` does not apply).

A classifier's head is new (random) and trained fully: PEFT puts `score` in `modules_to_save` for sequence
classification, and the adapter folder carries it.

Without `--merge_adapter` the output folder holds the adapter (`adapter_config.json`, `adapter_model.safetensors`,
the tokenizer), which `AutoPeftModelForCausalLM` (`...ForSequenceClassification`, `...ForSeq2SeqLM`) loads on top
of the base model named in it. With `--merge_adapter` the LoRA weights are merged into the base weights and the
folder is a complete model like any other.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

from torch import nn
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

from hf_textgen.errors import UserError, first_line

logger = logging.getLogger(__name__)

ALL_LINEAR = "all-linear"
# The PEFT task type for each task's Auto class: it decides the `AutoPeftModelFor*` class and the saved head.
_PEFT_TASK_TYPES = {
    AutoModelForCausalLM: "CAUSAL_LM",
    AutoModelForSequenceClassification: "SEQ_CLS",
    AutoModelForSeq2SeqLM: "SEQ_2_SEQ_LM",
}
_RECURRENT_WEIGHT = re.compile(r"^weight_(ih|hh)_l\d+(_reverse)?$")


@dataclass
class PeftArguments:
    """LoRA fine-tuning with PEFT (`--use_peft`); the names are PEFT's and TRL's."""

    use_peft: bool = field(
        default=False,
        metadata={"help": "Train a LoRA adapter instead of every weight (needs --model_name_or_path and peft)."},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank: the inner size of each low-rank update."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling: updates are scaled by alpha / r."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA path's input while training."})
    lora_target_modules: list[str] = field(
        default_factory=lambda: [ALL_LINEAR],
        metadata={
            "help": "Module names to adapt (PEFT's target_modules), or all-linear: for the Transformer every linear "
            "layer of the blocks (qkv_proj, o_proj, gate_up_proj, down_proj), for the encoder-decoder every "
            "attention and feed-forward linear, for the RNN the recurrent weights of every layer (weight_ih_l0, "
            "weight_hh_l0, through PEFT's target_parameters, since nn.LSTM/GRU hold no linear layers; no dropout "
            "there). A "
            "classifier's head is always trained in full (modules_to_save)."
        },
    )
    merge_adapter: bool = field(
        default=False,
        metadata={
            "help": "Merge the trained adapter into the base weights and save a complete model folder "
            "(default: save the adapter only, loaded with peft's AutoPeftModelFor*)."
        },
    )

    def __post_init__(self):
        if not self.use_peft:
            if self.merge_adapter:
                raise UserError("--merge_adapter merges a LoRA adapter: pass --use_peft too")
            return
        if self.lora_r < 1:
            raise UserError(f"--lora_r must be a positive integer (the adapter's rank), got {self.lora_r}")
        if self.lora_alpha <= 0:
            raise UserError(f"--lora_alpha must be positive, got {self.lora_alpha}")
        if not 0 <= self.lora_dropout < 1:
            raise UserError(f"--lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if not self.lora_target_modules:
            raise UserError("--lora_target_modules needs at least one name (or all-linear)")


def _recurrent_parameters(model: nn.Module) -> list[str]:
    """The full names of every recurrent weight matrix in `model` (RNN layers: `model.layers.0.weight_ih_l0`, ...)."""
    names = []
    for module_name, module in model.named_modules():
        if isinstance(module, nn.RNNBase):
            names += [
                f"{module_name}.{name}"
                for name, _ in module.named_parameters(recurse=False)
                if _RECURRENT_WEIGHT.match(name)
            ]
    return names


def check_peft_available() -> None:
    """Refuse `--use_peft` early when PEFT is not installed."""
    try:
        import peft  # noqa: F401
    except ImportError:
        raise UserError('--use_peft needs PEFT: pip install "hf_textgen[peft]" (or pip install peft)') from None


def lora_config(model: nn.Module, auto_class: type, peft_args: PeftArguments):
    """The `peft.LoraConfig` for `model` trained as `auto_class` (see the module docstring for the targets)."""
    from peft import LoraConfig

    targets = list(peft_args.lora_target_modules)
    target_modules: str | list[str] | None = ALL_LINEAR if targets == [ALL_LINEAR] else targets
    target_parameters = None
    dropout = peft_args.lora_dropout
    if target_modules == ALL_LINEAR:
        target_parameters = _recurrent_parameters(model) or None
        if target_parameters:
            # A recurrent model: its only linear layers are the heads, which all-linear must leave alone.
            target_modules = []
            if dropout:
                # PEFT adapts a bare parameter without an input of its own to drop out (`ParamWrapper`).
                logger.warning("--lora_dropout %s is ignored: PEFT's adapters on the RNN's weights take none", dropout)
                dropout = 0.0
    return LoraConfig(
        task_type=_PEFT_TASK_TYPES[auto_class],
        r=peft_args.lora_r,
        lora_alpha=peft_args.lora_alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        target_parameters=target_parameters,
    )


def apply_lora(model, auto_class: type, peft_args: PeftArguments):
    """Wrap `model` in a PEFT LoRA model (only the adapter and a classifier head stay trainable).

    Args:
        model: The base model (built or loaded for the task).
        auto_class: The task's Auto class (decides PEFT's task type).
        peft_args: The LoRA settings.

    Raises:
        UserError: A target module name the model does not have (PEFT's message, on one line).
    """
    from peft import get_peft_model

    config = lora_config(model, auto_class, peft_args)
    try:
        peft_model = get_peft_model(model, config)
    except ValueError as error:
        raise UserError(f"--lora_target_modules: {first_line(error)}") from None
    trainable, total = peft_model.get_nb_trainable_parameters()
    if trainable == 0:
        raise UserError("--lora_target_modules: the adapter has nothing to train; name modules the model has")
    return peft_model


def merge_lora(peft_model):
    """The base model with the trained adapter merged into its weights (a plain `PreTrainedModel`).

    A model with tied embeddings whose head is adapted (`--lora_target_modules lm_head`) is untied first: its head
    *is* the embedding matrix, so merging in place would change every input embedding too, which the adapter never
    did. The merged model then keeps the input embeddings and gets its own head (`tie_word_embeddings=False`).
    """
    base = peft_model.get_base_model()
    head = base.get_output_embeddings()
    head_weight = getattr(getattr(head, "base_layer", None), "weight", None)
    if head_weight is not None and head_weight is base.get_input_embeddings().weight:
        head.base_layer.weight = nn.Parameter(head_weight.detach().clone(), requires_grad=head_weight.requires_grad)
        base.config.tie_word_embeddings = False
    return peft_model.merge_and_unload()


__all__ = ["PeftArguments", "apply_lora", "check_peft_available", "lora_config", "merge_lora"]
