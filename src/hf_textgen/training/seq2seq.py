"""Sequence-to-sequence fine-tuning (`hf-textgen finetune --task seq2seq`) with the `Seq2SeqTrainer`.

The data are json / jsonl / csv rows with a source and a target column (`--source_column`, `--target_column`).
Sources are tokenized exactly as a user's `tokenizer(text)` call at inference would; targets get EOS appended so
the model learns where to stop (the convention of `hf_textgen.evaluation.language_modeling.evaluate_seq2seq`).
Evaluation generates (`predict_with_generate`) and scores the generated texts with the package's `exact_match` and
`sacrebleu` metric modules, reported as `eval_exact_match` and `eval_bleu` next to `eval_loss`.

The model is an encoder-decoder: the hf_textgen family from scratch (`--model_type seq2seq`, the small preset
plus `--config_overrides`), or any saved / Hub encoder-decoder via `--model_name_or_path`. Without
`--tokenizer_name` a tokenizer (`--tokenizer_type`, `--tokenizer_vocab_size`) is trained on the training pairs and
saved with the model. The output folder is written as by the other finetune tasks: checkpoints to resume from, and
at the end a normal transformers model folder (safetensors, config with auto_map and code, tokenizer,
generation_config.json) with the metrics.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from datasets import DatasetDict
from transformers import (
    AutoConfig,
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    EvalPrediction,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)

from hf_textgen.data import load_raw_datasets
from hf_textgen.errors import UserError
from hf_textgen.training.common import (
    build_config,
    check_tokenizer_fits,
    load_model,
    load_tokenizer,
    max_positions,
    prepare_output_dir,
    resolve_resume_checkpoint,
    special_token_ids,
    train_tokenizer_on,
)
from hf_textgen.training.pretrain import setup_logging
from hf_textgen.training.results import RankSyncCallback, finish, perplexity

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the cross-entropy loss skips
SEQ2SEQ_MODEL_TYPE = "hf_textgen_seq2seq"
_SOURCE, _TARGET = "source", "target"  # internal column names once the user's columns are found


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


def load_pairs(data_args, source_column: str, target_column: str, cache_dir: str | None = None) -> DatasetDict:
    """Load train/validation (source, target) pairs as a `DatasetDict` with string columns "source" and "target".

    Rows with an empty or missing source or target are dropped (with a warning).

    Raises:
        UserError: No data named, streaming, a missing / empty / unreadable file, a missing column, or no pair left.
    """
    if not getattr(data_args, "train_file", None) and not getattr(data_args, "dataset_name", None):
        raise UserError("--task seq2seq needs (source, target) pairs: pass --train_file (json, jsonl or csv)")
    if getattr(data_args, "streaming", False):
        raise UserError("--task seq2seq does not support --streaming; drop it")
    try:
        # The shared loader finds its one text column: point it at the source, then rename it back.
        raw = load_raw_datasets(dataclasses.replace(data_args, text_column_name=source_column), cache_dir)
    except UserError as error:
        raise UserError(str(error).replace("--text_column_name", "--source_column")) from None
    pairs = {}
    for split, dataset in raw.items():
        if target_column not in dataset.column_names:
            if split == "train" and "text" in dataset.column_names and len(dataset.column_names) == 1:
                hint = "plain text has no columns: give json, jsonl or csv rows with a source and a target"
            else:
                hint = f"columns: {', '.join(c if c != 'text' else source_column for c in dataset.column_names)}"
            raise UserError(f"the {split} data has no target column {target_column!r} ({hint}); fix --target_column")
        dataset = dataset.select_columns(["text", target_column]).rename_column("text", _SOURCE)
        if target_column != _TARGET:
            dataset = dataset.rename_column(target_column, _TARGET)
        before = len(dataset)
        dataset = dataset.filter(
            lambda row: (
                isinstance(row[_SOURCE], str)
                and isinstance(row[_TARGET], str)
                and bool(row[_SOURCE].strip())
                and bool(row[_TARGET].strip())
            ),
            desc="Dropping pairs with an empty source or target",
        )
        if len(dataset) < before:
            logger.warning("%s: %d pair(s) without source or target text dropped", split, before - len(dataset))
        if len(dataset) == 0:
            raise UserError(f"the {split} data holds no (source, target) pair with text on both sides")
        pairs[split] = dataset
    return DatasetDict(pairs)


def tokenize_pairs(
    examples: dict[str, list[str]],
    tokenizer: PreTrainedTokenizerBase,
    max_source_length: int,
    max_target_length: int,
) -> dict[str, list[list[int]]]:
    """Batched `datasets.map` function: source ids (as `tokenizer(source)` gives them) and labels (target + EOS).

    Sources longer than `max_source_length` tokens and targets longer than `max_target_length` (EOS included)
    lose their end.
    """
    features = tokenizer(examples[_SOURCE], truncation=True, max_length=max_source_length)
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    targets = tokenizer(examples[_TARGET], add_special_tokens=False)["input_ids"]
    features["labels"] = [ids[: max_target_length - len(eos)] + eos for ids in targets]
    return features


def _texts(pairs: DatasetDict) -> Iterator[str]:
    for row in pairs["train"]:
        yield row[_SOURCE]
        yield row[_TARGET]


# ---------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------


def seq2seq_metrics(tokenizer: PreTrainedTokenizerBase):
    """A `compute_metrics` for generated ids: exact match and (where sacrebleu is installed) corpus BLEU.

    The Trainer prefixes the keys, so they are reported as `eval_exact_match` and `eval_bleu`.
    """
    from hf_textgen.evaluation import load_metric

    exact_match = load_metric("exact_match")
    try:
        import sacrebleu  # noqa: F401  (the metric module's dependency)
    except ImportError:
        logger.warning('sacrebleu is not installed: no eval_bleu (pip install "hf_textgen[seq2seq]")')
        bleu = None
    else:
        bleu = load_metric("sacrebleu")
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def decode(ids: np.ndarray) -> list[str]:
        ids = np.where(ids < 0, pad_token_id, ids)  # -100: label padding, and padding between eval batches
        return [text.strip() for text in tokenizer.batch_decode(ids, skip_special_tokens=True)]

    def compute_metrics(prediction: EvalPrediction) -> dict[str, float]:
        generated = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predictions, references = decode(generated), decode(prediction.label_ids)
        metrics = exact_match.compute(predictions=predictions, references=references)
        if bleu is not None:
            metrics["bleu"] = bleu.compute(predictions=predictions, references=references)["bleu"]
        return metrics

    return compute_metrics


# ---------------------------------------------------------------------------------------------------------------
# Model config and lengths
# ---------------------------------------------------------------------------------------------------------------


def _model_config(model_args, tokenizer: PreTrainedTokenizerBase, resume_from: str | None):
    """The config to train: from a checkpoint, a saved model, a config, or the seq2seq preset from scratch."""
    if resume_from:
        return AutoConfig.from_pretrained(resume_from, trust_remote_code=model_args.trust_remote_code), bool(
            model_args.model_name_or_path
        )
    from_scratch: dict[str, Any] = special_token_ids(tokenizer)
    # The decoder starts every target from BOS (or, for tokenizers without one, from padding as T5 does).
    start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id
    from_scratch["decoder_start_token_id"] = start
    config, from_pretrained = build_config(model_args, default_model_type=SEQ2SEQ_MODEL_TYPE, **from_scratch)
    if not getattr(config, "is_encoder_decoder", False):
        raise UserError(
            f"--task seq2seq needs an encoder-decoder model, but {config.model_type} is not one; "
            "use --model_type seq2seq (or an encoder-decoder --model_name_or_path)"
        )
    if getattr(config, "decoder_start_token_id", None) is None and start is not None:
        config.decoder_start_token_id = start
    if config.pad_token_id is None:
        config.pad_token_id = tokenizer.pad_token_id
    return config, from_pretrained


def _lengths(finetune_args, config: PretrainedConfig) -> tuple[int, int]:
    """`--max_source_length` / `--max_target_length`, capped at what the model takes."""
    limit = max_positions(config)
    lengths = []
    for name in ("max_source_length", "max_target_length"):
        value = getattr(finetune_args, name, None) or (256 if name == "max_source_length" else 128)
        if value < 1:
            raise UserError(f"--{name} must be at least 1, got {value}")
        if limit is not None and value > limit:
            logger.warning("--%s %d is beyond the model's %d positions: using %d", name, value, limit, limit)
            value = limit
        lengths.append(value)
    return lengths[0], lengths[1]


def _set_generation_config(model, tokenizer: PreTrainedTokenizerBase, max_target_length: int, saving: bool) -> None:
    """Greedy decoding up to the longest target: what the evaluation generates and `generate` starts from.

    During training the limit is `max_length` (decoder start token included): the Seq2SeqTrainer fills in a
    default `max_length` during evaluation, which next to a `max_new_tokens` would warn at every `generate` call.
    The saved folder gets `max_new_tokens` alone, the setting `hf-textgen generate` and users override.
    """
    settings: dict[str, Any] = {"do_sample": False, "num_beams": 1, "repetition_penalty": 1.0}
    if saving:
        settings["max_new_tokens"] = max_target_length
    else:
        settings.update(max_length=max_target_length + 1, max_new_tokens=None)
    try:
        from hf_textgen.generation import set_default_generation_config
    except ImportError:
        model.generation_config.update(**{key: value for key, value in settings.items() if value is not None})
        return
    set_default_generation_config(model, tokenizer, **settings)


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------


def run_seq2seq_finetune(
    model_args,
    data_args,
    finetune_args,
    training_args: Seq2SeqTrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Train an encoder-decoder on (source, target) pairs and save the finished model folder.

    Args:
        model_args: `hf_textgen.training.arguments.ModelArguments` (model_type / config_overrides / config_name /
            model_name_or_path / tokenizer_name / tokenizer_type / tokenizer_vocab_size / ...).
        data_args: `hf_textgen.data.DataArguments` (train_file / validation_file / dataset_name /
            validation_split_percentage / max_train_samples / max_eval_samples).
        finetune_args: `hf_textgen.training.arguments.FinetuneArguments` (source_column, target_column,
            max_source_length, max_target_length).
        training_args: `Seq2SeqTrainingArguments` (any `TrainingArguments` flag, plus generation during eval).
            Evaluation always generates here (`predict_with_generate` is switched on): exact match needs text.
        callbacks: Extra `TrainerCallback`s.

    Returns:
        The train metrics and the eval metrics (`eval_loss`, `eval_exact_match`, `eval_bleu`, `perplexity`).

    Raises:
        UserError: Missing or empty data, a missing column, a model that is not an encoder-decoder, a tokenizer
            that does not fit the model, or an output folder that would be clobbered.
    """
    if not isinstance(training_args, Seq2SeqTrainingArguments):
        raise TypeError("run_seq2seq_finetune needs Seq2SeqTrainingArguments (generation settings for evaluation)")
    setup_logging(training_args)
    source_column = getattr(finetune_args, "source_column", _SOURCE)
    target_column = getattr(finetune_args, "target_column", _TARGET)
    resume_from = resolve_resume_checkpoint(training_args) if training_args.do_train else None
    set_seed(training_args.seed)

    pairs = load_pairs(data_args, source_column, target_column, model_args.cache_dir)
    tokenizer_source = model_args.tokenizer_name or resume_from or model_args.model_name_or_path
    if tokenizer_source:
        tokenizer = load_tokenizer(tokenizer_source, model_args)
    else:
        tokenizer = train_tokenizer_on(_texts(pairs), model_args)
    if tokenizer.eos_token_id is None:
        raise UserError("the tokenizer has no eos_token to end targets with; use one that has")
    config, from_pretrained = _model_config(model_args, tokenizer, resume_from)
    check_tokenizer_fits(tokenizer, config)
    max_source_length, max_target_length = _lengths(finetune_args, config)

    processed = pairs.map(
        tokenize_pairs,
        batched=True,
        remove_columns=[_SOURCE, _TARGET],
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_source_length": max_source_length,
            "max_target_length": max_target_length,
        },
        desc="Tokenizing sources and targets",
    )
    train_dataset = eval_dataset = None
    if training_args.do_train:
        train_dataset = processed["train"]
        if data_args.max_train_samples is not None:
            train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
    if training_args.do_eval:
        eval_dataset = processed["validation"]
        if data_args.max_eval_samples is not None:
            eval_dataset = eval_dataset.select(range(min(data_args.max_eval_samples, len(eval_dataset))))
        training_args.predict_with_generate = True

    model = load_model(AutoModelForSeq2SeqLM, config, model_args, from_pretrained)
    if not from_pretrained:
        _set_generation_config(model, tokenizer, max_target_length, saving=False)
    # Every check has passed: from here on the output folder may be written.
    prepare_output_dir(training_args, resume_from)
    tokenizer.model_max_length = max_positions(config) or tokenizer.model_max_length
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for without an accelerator

    trainer = Seq2SeqTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE_INDEX),
        compute_metrics=seq2seq_metrics(tokenizer) if eval_dataset is not None else None,
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
        eval_metrics["perplexity"] = perplexity(eval_metrics["eval_loss"])
    if not from_pretrained:
        _set_generation_config(trainer.model, tokenizer, max_target_length, saving=True)
    finish(
        trainer,
        train_metrics,
        eval_metrics,
        base_model=model_args.model_name_or_path,
        datasets=data_args.dataset_name,
        task="seq2seq",
    )
    return {**(train_metrics or {}), **(eval_metrics or {})}
