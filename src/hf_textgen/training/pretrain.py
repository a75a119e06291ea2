"""Causal-LM pretraining with the transformers `Trainer`: the library entry point behind `hf-textgen pretrain`."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import datasets
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    PretrainedConfig,
    Trainer,
    TrainerCallback,
    default_data_collator,
    set_seed,
)
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from hf_textgen.data import DataArguments, load_raw_datasets, tokenize_and_group
from hf_textgen.errors import UserError
from hf_textgen.training.arguments import ModelArguments, TrainingArguments
from hf_textgen.training.common import (
    build_config,
    check_local_path,
    check_tokenizer_fits,
    check_training_args,
    load_model,
    load_tokenizer,
    max_positions,
    prepare_output_dir,
    resolve_block_size,
    resolve_resume_checkpoint,
    special_token_ids,
    train_tokenizer_on,
)
from hf_textgen.training.results import RankSyncCallback, finish, perplexity, set_generation_defaults

logger = logging.getLogger(__name__)

# Documents read from a streamed corpus to train a tokenizer on (a streamed corpus may be endless).
_STREAMING_TOKENIZER_DOCUMENTS = 100_000

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


def setup_logging(training_args: transformers.TrainingArguments) -> None:
    """Log as the transformers examples do: info on the main process, warnings on the others."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S")
    level = training_args.get_process_log_level()
    logging.getLogger("hf_textgen").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def _training_texts(raw_datasets) -> Iterator[str]:
    train = raw_datasets["train"]
    if isinstance(train, datasets.IterableDataset):
        train = train.take(_STREAMING_TOKENIZER_DOCUMENTS)
        yield from (example["text"] for example in train)
        return
    for start in range(0, len(train), 1000):
        yield from train[start : start + 1000]["text"]


def _train_tokenizer_once(raw_datasets, model_args: ModelArguments):
    """Train the tokenizer on the main process only and hand it to the others: every rank must share one vocabulary."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_world_size() == 1:
        return train_tokenizer_on(_training_texts(raw_datasets), model_args)
    payload = [None]
    if torch.distributed.get_rank() == 0:
        payload = [train_tokenizer_on(_training_texts(raw_datasets), model_args)]
    torch.distributed.broadcast_object_list(payload, src=0)
    return payload[0]


def check_causal_lm(config: PretrainedConfig) -> None:
    """Refuse a config that has no causal-LM head (e.g. the encoder-decoder family)."""
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UserError(
            f"{config.model_type} has no causal language-model head to pretrain; use --model_type rnn or "
            "transformer (encoder-decoders are trained with `hf-textgen finetune --task seq2seq`)"
        )


def run_pretrain(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Pretrain (or continue pretraining) a causal language model and save the finished folder.

    Every check (data, model type, tokenizer against the model, block size) runs before the output folder is
    touched. Then the `Trainer` trains, evaluating loss and perplexity, writing checkpoints, resuming from the
    last complete one when the output folder already holds some.

    Args:
        model_args: Which model and tokenizer (see `ModelArguments`).
        data_args: Which text (see `hf_textgen.data.DataArguments`; the bundled corpus by default).
        training_args: Every `TrainingArguments` field, plus `overwrite_output_dir`.
        callbacks: Extra `TrainerCallback`s.

    Returns:
        The train and eval metrics together (`train_loss`, `eval_loss`, `perplexity`, ...).
    """
    setup_logging(training_args)
    check_training_args(training_args, streaming=data_args.streaming)
    resume_from = resolve_resume_checkpoint(training_args) if training_args.do_train else None
    set_seed(training_args.seed)

    # The main process fills the datasets cache first; the others then read it instead of racing to write it.
    with training_args.main_process_first(desc="loading the raw data"):
        raw_datasets = load_raw_datasets(data_args, cache_dir=model_args.cache_dir)

    # A resumed run reads the tokenizer and config it started with from its checkpoint, so nothing drifts.
    if model_args.model_name_or_path:
        check_local_path(model_args.model_name_or_path, "--model_name_or_path")
    trained_tokenizer = False
    tokenizer_source = model_args.tokenizer_name or (resume_from if resume_from else model_args.model_name_or_path)
    if tokenizer_source:
        tokenizer = load_tokenizer(tokenizer_source, model_args)
    elif training_args.do_train:
        tokenizer = _train_tokenizer_once(raw_datasets, model_args)
        trained_tokenizer = True
    else:
        raise UserError("evaluation alone needs a trained model: pass --model_name_or_path")

    if resume_from:
        config = AutoConfig.from_pretrained(resume_from, trust_remote_code=model_args.trust_remote_code)
        from_pretrained = bool(model_args.model_name_or_path)
    else:
        config, from_pretrained = build_config(model_args, **special_token_ids(tokenizer))
    if not from_pretrained and not training_args.do_train:
        raise UserError("evaluation alone needs a trained model: pass --model_name_or_path")
    check_causal_lm(config)
    check_tokenizer_fits(tokenizer, config)
    block_size = resolve_block_size(data_args.block_size, config)
    if trained_tokenizer:
        tokenizer.model_max_length = max_positions(config) or block_size
    with training_args.main_process_first(desc="tokenizing and grouping"):
        lm_datasets = tokenize_and_group(raw_datasets, tokenizer, block_size, data_args)
    train_dataset = lm_datasets["train"] if training_args.do_train else None
    eval_dataset = lm_datasets["validation"] if training_args.do_eval else None
    if eval_dataset is None and training_args.eval_strategy != "no":
        training_args.eval_strategy = transformers.IntervalStrategy.NO

    model = load_model(AutoModelForCausalLM, config, model_args, from_pretrained)
    if not from_pretrained:
        set_generation_defaults(model, tokenizer)
        num_parameters = sum(p.numel() for p in model.parameters())
        logger.info("training a new %s model from scratch: %.2fM parameters", config.model_type, num_parameters / 1e6)

    # Every check has passed: from here on the output folder may be written.
    prepare_output_dir(training_args, resume_from)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for without an accelerator
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=default_data_collator,  # blocks are equal-length: stacking is all a batch needs
        callbacks=[RankSyncCallback(), *(callbacks or [])],
    )

    train_metrics = None
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=resume_from)
        train_metrics = dict(train_result.metrics)
        if hasattr(train_dataset, "__len__"):
            train_metrics["train_samples"] = len(train_dataset)
    eval_metrics = None
    if training_args.do_eval:
        eval_metrics = trainer.evaluate()
        eval_metrics["perplexity"] = perplexity(eval_metrics["eval_loss"])
        if hasattr(eval_dataset, "__len__"):
            eval_metrics["eval_samples"] = len(eval_dataset)
    finish(
        trainer,
        train_metrics,
        eval_metrics,
        base_model=model_args.model_name_or_path,
        datasets=data_args.dataset_name,
        task="causal_lm",
    )
    return {**(train_metrics or {}), **(eval_metrics or {})}
