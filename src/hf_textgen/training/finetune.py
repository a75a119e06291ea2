"""Supervised fine-tuning with the `Trainer`: the library entry point behind `hf-textgen finetune`.

Tasks (`--task`):

- `causal_lm`: continued language-model training on task text (the pretraining loop on other data).
- `prompt_completion`: prompt/completion pairs; the loss counts only the completion and its appended EOS.
- `classification`: text/label pairs through `AutoModelForSequenceClassification`; accuracy and macro-F1.
- `seq2seq`: the encoder-decoder family, through `hf_textgen.training.seq2seq.run_seq2seq_finetune`.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
import torch
from datasets import Dataset, DatasetDict
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
    EvalPrediction,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    set_seed,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

from hf_textgen.data import DataArguments, load_raw_datasets
from hf_textgen.errors import UserError
from hf_textgen.training.arguments import FinetuneArguments, ModelArguments, TrainingArguments
from hf_textgen.training.common import (
    build_config,
    check_local_path,
    check_tokenizer_fits,
    check_training_args,
    load_model,
    load_tokenizer,
    max_positions,
    prepare_output_dir,
    resolve_resume_checkpoint,
    special_token_ids,
)
from hf_textgen.training.pretrain import check_causal_lm, run_pretrain, setup_logging
from hf_textgen.training.results import RankSyncCallback, finish, perplexity, set_generation_defaults

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the cross-entropy loss skips

# `hf-textgen finetune` defaults that differ from `TrainingArguments`: evaluate and save once per epoch.
FINETUNE_DEFAULTS = {
    "do_train": True,
    "do_eval": True,
    "learning_rate": 1e-4,
    "warmup_steps": 0.05,
    "per_device_train_batch_size": 16,
    "per_device_eval_batch_size": 16,
    "num_train_epochs": 3.0,
    "logging_steps": 10,
    "eval_strategy": "epoch",
    "save_strategy": "epoch",
    "save_total_limit": 2,
}
# Examples are cut to this many tokens when neither the flags nor the model say otherwise.
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


def _load_task_data(data_args: DataArguments, model_args: ModelArguments, text_column: str, task: str) -> DatasetDict:
    """Load the task's files with the shared loader, with `text_column` renamed to "text"."""
    if not data_args.train_file and not data_args.dataset_name:
        raise UserError(f"--task {task} needs task data: pass --train_file (json, jsonl or csv) or --dataset_name")
    if data_args.streaming:
        raise UserError(f"--task {task} does not support --streaming; drop it")
    return load_raw_datasets(dataclasses.replace(data_args, text_column_name=text_column), model_args.cache_dir)


def _require_column(raw: DatasetDict, column: str, flag: str) -> None:
    for split, dataset in raw.items():
        if column not in dataset.column_names:
            raise UserError(
                f"the {split} data has no column {column!r} (columns: {', '.join(dataset.column_names)}); "
                f"fix {flag} or the data"
            )


def _limit(dataset: Dataset, count: int | None) -> Dataset:
    return dataset.select(range(min(count, len(dataset)))) if count is not None else dataset


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


def _model_config(
    model_args: ModelArguments, tokenizer: PreTrainedTokenizerBase, resume_from: str | None, **task_fields: Any
) -> tuple[PretrainedConfig, bool]:
    if resume_from:
        config = AutoConfig.from_pretrained(resume_from, trust_remote_code=model_args.trust_remote_code)
        return config, bool(model_args.model_name_or_path)
    config, from_pretrained = build_config(model_args, **special_token_ids(tokenizer), **task_fields)
    if from_pretrained:
        for key, value in task_fields.items():
            setattr(config, key, value)
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id  # batches are padded, and classifiers pool the last real token
    return config, from_pretrained


def _max_length(finetune_args: FinetuneArguments, data_args: DataArguments, config: PretrainedConfig) -> int:
    limit = max_positions(config)
    length = finetune_args.max_seq_length or data_args.block_size or min(limit or _DEFAULT_MAX_SEQ_LENGTH, 1024)
    if limit is not None and length > limit:
        raise UserError(
            f"examples of {length} tokens are beyond what the model takes ({limit} positions); "
            "lower --max_seq_length / --block_size"
        )
    return length


def run_finetune(
    model_args: ModelArguments,
    data_args: DataArguments,
    finetune_args: FinetuneArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Fine-tune a model for `finetune_args.task` and save the finished folder (see the module docstring).

    Returns:
        The train and eval metrics together.
    """
    task = finetune_args.task
    if task == "causal_lm":
        return run_pretrain(model_args, data_args, training_args, callbacks=callbacks)
    if task == "seq2seq":
        try:
            from hf_textgen.training.seq2seq import run_seq2seq_finetune
        except ImportError:
            raise UserError("--task seq2seq is not available in this installation") from None
        return run_seq2seq_finetune(model_args, data_args, finetune_args, training_args, callbacks=callbacks)

    setup_logging(training_args)
    if not model_args.model_name_or_path and not model_args.model_type and not model_args.config_name:
        raise UserError("say which model to fine-tune: --model_name_or_path (or --model_type to start from scratch)")
    check_training_args(training_args)
    resume_from = resolve_resume_checkpoint(training_args) if training_args.do_train else None
    set_seed(training_args.seed)

    if model_args.model_name_or_path:
        check_local_path(model_args.model_name_or_path, "--model_name_or_path")
    tokenizer_source = model_args.tokenizer_name or resume_from or model_args.model_name_or_path
    if not tokenizer_source:
        raise UserError(f"--task {task} from scratch needs a tokenizer: pass --tokenizer_name")
    tokenizer = load_tokenizer(tokenizer_source, model_args)

    if task == "prompt_completion":
        if tokenizer.eos_token_id is None:
            raise UserError("the tokenizer has no eos_token to end completions with; use one that has")
        with training_args.main_process_first(desc="loading the data"):
            raw = _load_task_data(data_args, model_args, finetune_args.prompt_column, task)
        raw = DatasetDict({split: ds.rename_column("text", finetune_args.prompt_column) for split, ds in raw.items()})
        _require_column(raw, finetune_args.completion_column, "--completion_column")
        config, from_pretrained = _model_config(model_args, tokenizer, resume_from)
        check_causal_lm(config)
        auto_class = AutoModelForCausalLM
    else:  # classification
        with training_args.main_process_first(desc="loading the data"):
            raw = _load_task_data(data_args, model_args, data_args.text_column_name or "text", task)
        _require_column(raw, finetune_args.label_column_name, "--label_column_name")
        id2label, label2id = label_mapping(raw, finetune_args.label_column_name)
        config, from_pretrained = _model_config(
            model_args, tokenizer, resume_from, num_labels=len(id2label), id2label=id2label, label2id=label2id
        )
        if type(config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:
            raise UserError(f"{config.model_type} models have no sequence-classification head; use rnn or transformer")
        auto_class = AutoModelForSequenceClassification
    check_tokenizer_fits(tokenizer, config)
    max_length = _max_length(finetune_args, data_args, config)

    # The main process fills the datasets cache first; the others then read it instead of racing to write it.
    with training_args.main_process_first(desc="tokenizing"):
        if task == "prompt_completion":
            processed = prepare_prompt_completion(raw, tokenizer, finetune_args, max_length)
            collator = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True)
            compute_metrics = None
        else:
            processed = prepare_classification(raw, tokenizer, finetune_args.label_column_name, label2id, max_length)
            collator = DataCollatorWithPadding(tokenizer)
            compute_metrics = classification_metrics(len(id2label))

    train_dataset = _limit(processed["train"], data_args.max_train_samples) if training_args.do_train else None
    eval_dataset = _limit(processed["validation"], data_args.max_eval_samples) if training_args.do_eval else None

    model = load_model(auto_class, config, model_args, from_pretrained)
    # Every check has passed: from here on the output folder may be written.
    prepare_output_dir(training_args, resume_from)
    if task == "prompt_completion" and not from_pretrained:
        set_generation_defaults(model, tokenizer)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for without an accelerator

    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=collator,
        compute_metrics=compute_metrics,
        callbacks=[RankSyncCallback(), *(callbacks or [])],
    )
    train_metrics = None
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
        train_metrics = {**train_result.metrics, "train_samples": len(train_dataset)}
    eval_metrics = None
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_dataset)
        if task == "prompt_completion":
            eval_metrics["perplexity"] = perplexity(eval_metrics["eval_loss"])
    finish(
        trainer,
        train_metrics,
        eval_metrics,
        base_model=model_args.model_name_or_path,
        datasets=data_args.dataset_name,
        task=task,
    )
    return {**(train_metrics or {}), **(eval_metrics or {})}
