"""Supervised fine-tuning with the `Trainer`: the library entry point behind `hf-textgen finetune`.

Tasks (`--task`):

- `causal_lm`: continued language-model training on task text (the pretraining loop on other data).
- `prompt_completion`: prompt/completion pairs; the loss counts only the completion and its appended EOS.
- `classification`: text/label pairs through `AutoModelForSequenceClassification`; accuracy and macro-F1.
- `seq2seq`: the encoder-decoder family, through `hf_textgen.training.seq2seq.Seq2SeqTask`.

Each task is a `hf_textgen.training.runner.Task`; `run_task` trains them all the same way.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import field
from typing import Any

import numpy as np
from datasets import DatasetDict
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    EvalPrediction,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    TrainerCallback,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

from hf_textgen.data import DataArguments, load_raw_datasets
from hf_textgen.data.processing import MAX_DEFAULT_CONTEXT
from hf_textgen.errors import UserError
from hf_textgen.generation import max_positions
from hf_textgen.training.arguments import (
    PRETRAIN_DEFAULTS,
    FinetuneArguments,
    ModelArguments,
    Seq2SeqTrainingArguments,
    TrainingArguments,
    with_defaults,
)
from hf_textgen.training.lora import PeftArguments
from hf_textgen.training.pretrain import CausalLMTask, check_causal_lm
from hf_textgen.training.results import set_generation_defaults
from hf_textgen.training.runner import IGNORE_INDEX, Task, run_task

logger = logging.getLogger(__name__)

# `hf-textgen finetune` defaults that differ from `TrainingArguments`: evaluate and save once per epoch. The
# recipe from a pretrained folder won the ablation in the README's "What pretraining buys" (`hf-textgen bench
# --only finetune_recipe`): for a new classification head, lr 1e-3 at the head with layer-wise decay 0.5 below it
# and mean pooling; for the tasks that keep the LM head, one rate of 1e-4 (`FLAT_FINETUNE_LEARNING_RATE`); both
# with 10% warm-up, linear decay and weight decay 0.01.
FINETUNE_DEFAULTS = {
    "do_train": True,
    "do_eval": True,
    "learning_rate": 1e-3,
    "warmup_steps": 0.1,
    "weight_decay": 0.01,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "num_train_epochs": 3.0,
    "logging_steps": 10,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
}
FinetuningArguments = with_defaults(
    Seq2SeqTrainingArguments,  # TrainingArguments plus the generation-during-eval flags --task seq2seq uses
    "FinetuningArguments",
    __name__,
    {
        **FINETUNE_DEFAULTS,
        # Resolved by `finetune_learning_rate` once the model is known.
        "learning_rate": field(
            default=None,
            metadata={
                "help": f"The initial learning rate for AdamW. Default: {FINETUNE_DEFAULTS['learning_rate']} for the "
                "new classification head of a pretrained model, the layers below it lower (--layerwise_lr_decay); "
                "1e-4 for every weight where one rate is used (causal_lm, prompt_completion, seq2seq, --use_peft, "
                "--layerwise_lr_decay 1); pretraining's "
                f"{PRETRAIN_DEFAULTS['learning_rate']} for a model trained from scratch."
            },
        ),
    },
    "`Seq2SeqTrainingArguments` with `hf-textgen finetune`'s defaults (`FINETUNE_DEFAULTS`).",
)
# Examples are cut to this many tokens when neither the flags nor the model say otherwise (an RNN).
_DEFAULT_MAX_SEQ_LENGTH = 512


# ---------------------------------------------------------------------------------------------------------------
# prompt_completion
# ---------------------------------------------------------------------------------------------------------------


def tokenize_prompt_completion(
    examples: dict[str, list[str]],
    tokenizer: PreTrainedTokenizerBase,
    prompt_column: str,
    completion_column: str,
    max_length: int,
) -> dict[str, list[list[int]]]:
    """Tokenize prompt + completion + EOS; labels are `-100` on the prompt so only the completion is scored.

    A batched `datasets.map` function. Sequences longer than `max_length` lose their end (the completion's).
    """
    features: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    prompts = tokenizer(examples[prompt_column], add_special_tokens=False)["input_ids"]
    completions = tokenizer(examples[completion_column], add_special_tokens=False)["input_ids"]
    for prompt_ids, completion_ids in zip(prompts, completions):
        completion_ids = completion_ids + [tokenizer.eos_token_id]  # the model learns where to stop
        input_ids = (prompt_ids + completion_ids)[:max_length]
        labels = ([IGNORE_INDEX] * len(prompt_ids) + completion_ids)[:max_length]
        features["input_ids"].append(input_ids)
        features["attention_mask"].append([1] * len(input_ids))
        features["labels"].append(labels)
    return features


def prepare_prompt_completion(
    raw: DatasetDict, tokenizer: PreTrainedTokenizerBase, finetune_args: FinetuneArguments, max_length: int
) -> DatasetDict:
    """Tokenize every split for `prompt_completion` and drop rows left without a completion token."""
    processed = raw.map(
        tokenize_prompt_completion,
        batched=True,
        remove_columns=raw["train"].column_names,
        fn_kwargs={
            "tokenizer": tokenizer,
            "prompt_column": finetune_args.prompt_column,
            "completion_column": finetune_args.completion_column,
            "max_length": max_length,
        },
        desc="Tokenizing prompts and completions",
    )
    before = len(processed["train"])
    processed = processed.filter(_has_completion_tokens, desc="Dropping examples without completion tokens")
    if len(processed["train"]) < before:
        dropped = before - len(processed["train"])
        logger.warning("%d training example(s) dropped: their prompt fills all %d tokens", dropped, max_length)
    if len(processed["train"]) == 0:
        raise UserError(f"no training example keeps a completion token within {max_length} tokens")
    return processed


def _has_completion_tokens(example: dict[str, Any]) -> bool:
    return any(label != IGNORE_INDEX for label in example["labels"])


def _load_task_data(data_args: DataArguments, cache_dir: str | None, text_column: str, task: str) -> DatasetDict:
    """Load the task's files with the shared loader, with `text_column` renamed to "text"."""
    if not data_args.train_file and not data_args.dataset_name:
        raise UserError(f"--task {task} needs task data: pass --train_file (json, jsonl or csv) or --dataset_name")
    if data_args.streaming:
        raise UserError(f"--task {task} does not support --streaming; drop it")
    return load_raw_datasets(dataclasses.replace(data_args, text_column_name=text_column), cache_dir)


def _require_column(raw: DatasetDict, column: str, flag: str) -> None:
    for split, dataset in raw.items():
        if column not in dataset.column_names:
            raise UserError(
                f"the {split} data has no column {column!r} (columns: {', '.join(dataset.column_names)}); "
                f"fix {flag} or the data"
            )


# ---------------------------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------------------------


def label_mapping(raw: DatasetDict, label_column: str) -> tuple[dict[int, str], dict[str, int]]:
    """`id2label` / `label2id` from the training labels (sorted); validation labels must all occur in training."""
    train_labels = set(raw["train"][label_column])
    if None in train_labels:
        raise UserError(f"the train data has rows without a {label_column!r} value; fill or drop them")
    names = sorted(train_labels, key=lambda label: (not isinstance(label, (int, float)), label))
    if len(names) < 2:
        raise UserError(f"the train data has {len(names)} distinct label(s); classification needs at least 2")
    unseen = set(raw["validation"][label_column]) - train_labels
    if unseen:
        raise UserError(
            f"validation labels never seen in training: {', '.join(map(str, sorted(unseen, key=str)))}; "
            "add training examples for them or drop them"
        )
    id2label = {index: str(name) for index, name in enumerate(names)}
    return id2label, {name: index for index, name in id2label.items()}


def prepare_classification(
    raw: DatasetDict, tokenizer: PreTrainedTokenizerBase, label_column: str, label2id: dict[str, int], max_length: int
) -> DatasetDict:
    """Tokenize (truncating to `max_length`) and turn labels into class ids."""

    def encode(examples):
        features = tokenizer(examples["text"], truncation=True, max_length=max_length)
        features["labels"] = [label2id[str(label)] for label in examples[label_column]]
        return features

    return raw.map(encode, batched=True, remove_columns=raw["train"].column_names, desc="Tokenizing")


def classification_metrics(num_labels: int):
    """A `compute_metrics` giving accuracy and macro-F1 through the package's `evaluate` modules."""
    from hf_textgen.evaluation import load_metric

    accuracy, f1 = load_metric("accuracy"), load_metric("f1")

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = np.argmax(logits, axis=-1)  # (N,)
        references = prediction.label_ids
        return {
            "accuracy": accuracy.compute(predictions=predicted, references=references)["accuracy"],
            # every class counts equally, also classes the model never predicts
            "f1": f1.compute(
                predictions=predicted, references=references, average="macro", labels=list(range(num_labels))
            )["f1"],
        }

    return compute_metrics


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------


def max_seq_length(finetune_args: FinetuneArguments, data_args: DataArguments, config: PretrainedConfig) -> int:
    """`--max_seq_length`, else `--block_size`, else the model's context up to 1024 (512 for an RNN)."""
    limit = max_positions(config)
    default = min(limit, MAX_DEFAULT_CONTEXT) if limit is not None else _DEFAULT_MAX_SEQ_LENGTH
    length = finetune_args.max_seq_length or data_args.block_size or default
    if limit is not None and length > limit:
        raise UserError(
            f"examples of {length} tokens are beyond what the model takes ({limit} positions); "
            "lower --max_seq_length / --block_size"
        )
    return length


class _LabelledTask(Task):
    """A fine-tuning task on rows of task data: a model must be named, and the data are not streamed."""

    default_model_type = None

    def __init__(self, finetune_args: FinetuneArguments):
        self.finetune_args = finetune_args

    def check_arguments(self, model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
        if not model_args.model_name_or_path and not model_args.model_type and not model_args.config_name:
            raise UserError(
                "say which model to fine-tune: --model_name_or_path (or --model_type to start from scratch)"
            )


class PromptCompletionTask(_LabelledTask):
    """Prompt/completion pairs; the loss counts only the completion and its appended EOS."""

    name = "prompt_completion"
    auto_class = AutoModelForCausalLM

    def load_data(self, data_args: DataArguments, cache_dir: str | None) -> DatasetDict:
        args = self.finetune_args
        raw = _load_task_data(data_args, cache_dir, args.prompt_column, self.name)
        raw = DatasetDict({split: ds.rename_column("text", args.prompt_column) for split, ds in raw.items()})
        _require_column(raw, args.completion_column, "--completion_column")
        return raw

    def text_columns(self) -> tuple[str, ...]:
        return (self.finetune_args.prompt_column, self.finetune_args.completion_column)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if tokenizer.eos_token_id is None:
            raise UserError("the tokenizer has no eos_token to end completions with; use one that has")

    def check_config(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        check_causal_lm(config)

    def prepare_datasets(self, raw, tokenizer, config, data_args: DataArguments) -> DatasetDict:
        length = max_seq_length(self.finetune_args, data_args, config)
        return prepare_prompt_completion(raw, tokenizer, self.finetune_args, length)

    def data_collator(self, tokenizer, model):
        return DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True)

    def prepare_model(self, model, tokenizer, from_pretrained: bool) -> None:
        if not from_pretrained:
            set_generation_defaults(model, tokenizer)


class ClassificationTask(_LabelledTask):
    """Text/label pairs through `AutoModelForSequenceClassification`; accuracy and macro-F1."""

    name = "classification"
    auto_class = AutoModelForSequenceClassification
    reports_perplexity = False

    def __init__(self, finetune_args: FinetuneArguments):
        super().__init__(finetune_args)
        self.id2label: dict[int, str] = {}
        self.label2id: dict[str, int] = {}

    def load_data(self, data_args: DataArguments, cache_dir: str | None) -> DatasetDict:
        raw = _load_task_data(data_args, cache_dir, data_args.text_column_name or "text", self.name)
        _require_column(raw, self.finetune_args.label_column_name, "--label_column_name")
        self.id2label, self.label2id = label_mapping(raw, self.finetune_args.label_column_name)
        return raw

    def config_fields(self, raw, tokenizer) -> dict[str, Any]:
        fields = {"num_labels": len(self.id2label), "id2label": self.id2label, "label2id": self.label2id}
        if self.finetune_args.classifier_pooling is not None:
            fields["classifier_pooling"] = self.finetune_args.classifier_pooling
        return fields

    def check_config(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        if type(config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
            raise UserError(f"{config.model_type} models have no sequence-classification head; use rnn or transformer")

    def prepare_datasets(self, raw, tokenizer, config, data_args: DataArguments) -> DatasetDict:
        length = max_seq_length(self.finetune_args, data_args, config)
        return prepare_classification(raw, tokenizer, self.finetune_args.label_column_name, self.label2id, length)

    def data_collator(self, tokenizer, model):
        return DataCollatorWithPadding(tokenizer)

    def compute_metrics(self, tokenizer):
        return classification_metrics(len(self.id2label))


def finetune_learning_rate(
    model_args: ModelArguments, training_args: TrainingArguments, layerwise_lr_decay: float
) -> float:
    """Set `training_args.learning_rate` where the user gave none.

    From scratch: pretraining's rate. From a pretrained folder: `FINETUNE_DEFAULTS["learning_rate"]` at the head
    with layer-wise rates below it, or `FLAT_FINETUNE_LEARNING_RATE` when every weight trains at one rate (at the
    head's rate the pretrained layers forget what they learned; see the README's "What pretraining buys").
    """
    if training_args.learning_rate is None:
        if not model_args.model_name_or_path:
            training_args.learning_rate = PRETRAIN_DEFAULTS["learning_rate"]
        elif layerwise_lr_decay != 1.0:
            training_args.learning_rate = FINETUNE_DEFAULTS["learning_rate"]
        else:
            training_args.learning_rate = FLAT_FINETUNE_LEARNING_RATE
    return training_args.learning_rate


# From a pretrained folder, each layer trains at this factor of the learning rate of the layer above it.
DEFAULT_LAYERWISE_LR_DECAY = 0.5
# From a pretrained folder with one rate for every weight (causal_lm, prompt_completion, seq2seq, LoRA).
FLAT_FINETUNE_LEARNING_RATE = 1e-4


def finetune_recipe(
    model_args: ModelArguments, finetune_args: FinetuneArguments, peft_args: PeftArguments | None = None
) -> None:
    """Fill in the recipe fields the user left unset (`layerwise_lr_decay`, `classifier_pooling`).

    From a pretrained folder, for classification: layer-wise learning rates (ULMFiT) with
    `DEFAULT_LAYERWISE_LR_DECAY` and mean pooling when the head is new (the folder holds a causal LM), except under
    LoRA (only the adapters train, and the adapter folder reloads on the base model's config). The tasks that keep
    the pretrained LM head (causal_lm, prompt_completion) and seq2seq train every weight at one gentle rate: in the
    measurements that beat layer-wise rates for language modelling. From scratch, or where the user chose: as
    given.
    """
    from_pretrained = bool(model_args.model_name_or_path)
    use_peft = peft_args is not None and peft_args.use_peft
    if finetune_args.layerwise_lr_decay is None:
        layerwise = from_pretrained and finetune_args.task == "classification" and not use_peft
        finetune_args.layerwise_lr_decay = DEFAULT_LAYERWISE_LR_DECAY if layerwise else 1.0
    # Not under LoRA: its adapter folder is loaded on top of the base model's own config, which says "last".
    new_head = finetune_args.task == "classification" and from_pretrained and not use_peft
    if finetune_args.classifier_pooling is None and new_head and not _is_sequence_classifier(model_args):
        finetune_args.classifier_pooling = "mean"


def _is_sequence_classifier(model_args: ModelArguments) -> bool:
    """Whether the folder already holds a sequence classifier (whose pooling its head was trained with)."""
    try:
        config = AutoConfig.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code
        )
    except (OSError, ValueError):
        return False  # run_task reports the unreadable folder in its own words
    return any(name.endswith("ForSequenceClassification") for name in config.architectures or [])


def finetune_task(finetune_args: FinetuneArguments) -> Task:
    """The `Task` behind `--task` (`causal_lm`, `prompt_completion`, `classification` or `seq2seq`)."""
    if finetune_args.task == "causal_lm":
        return CausalLMTask()
    if finetune_args.task == "prompt_completion":
        return PromptCompletionTask(finetune_args)
    if finetune_args.task == "classification":
        return ClassificationTask(finetune_args)
    from hf_textgen.training.seq2seq import Seq2SeqTask

    return Seq2SeqTask(finetune_args)


def run_finetune(
    model_args: ModelArguments,
    data_args: DataArguments,
    finetune_args: FinetuneArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
    peft_args: PeftArguments | None = None,
) -> dict[str, float]:
    """Fine-tune a model for `finetune_args.task` and save the finished folder (see the module docstring).

    With `peft_args.use_peft` a LoRA adapter is trained instead of every weight (`hf_textgen.training.lora`).

    Returns:
        The train and eval metrics together.
    """
    finetune_recipe(model_args, finetune_args, peft_args)
    finetune_learning_rate(model_args, training_args, finetune_args.layerwise_lr_decay)
    task = finetune_task(finetune_args)
    task.layerwise_lr_decay = finetune_args.layerwise_lr_decay
    return run_task(task, model_args, data_args, training_args, callbacks=callbacks, peft_args=peft_args)
