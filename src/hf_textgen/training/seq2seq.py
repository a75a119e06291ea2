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

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
from datasets import DatasetDict
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    EvalPrediction,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
)

from hf_textgen.data.pairs import SOURCE, TARGET, load_pairs
from hf_textgen.errors import UserError
from hf_textgen.generation import max_positions, set_default_generation_config
from hf_textgen.training.runner import IGNORE_INDEX, Task, run_task

logger = logging.getLogger(__name__)

SEQ2SEQ_MODEL_TYPE = "hf_textgen_seq2seq"


# ---------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------


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
    features = tokenizer(examples[SOURCE], truncation=True, max_length=max_source_length)
    eos = [] if tokenizer.eos_token_id is None else [tokenizer.eos_token_id]
    targets = tokenizer(examples[TARGET], add_special_tokens=False)["input_ids"]
    features["labels"] = [ids[: max_target_length - len(eos)] + eos for ids in targets]
    return features


def _texts(pairs: DatasetDict) -> Iterator[str]:
    for row in pairs["train"]:
        yield row[SOURCE]
        yield row[TARGET]


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
    set_default_generation_config(model, tokenizer, **settings)


# ---------------------------------------------------------------------------------------------------------------
# The runner
# ---------------------------------------------------------------------------------------------------------------


class Seq2SeqTask(Task):
    """(source, target) pairs through an encoder-decoder and the `Seq2SeqTrainer` (see the module docstring)."""

    name = "seq2seq"
    auto_class = AutoModelForSeq2SeqLM
    trainer_class = Seq2SeqTrainer
    default_model_type = SEQ2SEQ_MODEL_TYPE

    def __init__(self, finetune_args):
        self.finetune_args = finetune_args
        self.max_target_length: int | None = None

    def text_columns(self) -> tuple[str, ...]:
        return (SOURCE, TARGET)

    def check_arguments(self, model_args, data_args, training_args) -> None:
        if not isinstance(training_args, Seq2SeqTrainingArguments):
            raise TypeError("--task seq2seq needs Seq2SeqTrainingArguments (generation settings for evaluation)")
        if training_args.do_eval:
            training_args.predict_with_generate = True  # exact match and BLEU score generated text

    def load_data(self, data_args, cache_dir: str | None) -> DatasetDict:
        source_column = getattr(self.finetune_args, "source_column", SOURCE)
        target_column = getattr(self.finetune_args, "target_column", TARGET)
        return load_pairs(data_args, source_column, target_column, cache_dir)

    def tokenizer_texts(self, raw: DatasetDict) -> Iterator[str]:
        return _texts(raw)

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if tokenizer.eos_token_id is None:
            raise UserError("the tokenizer has no eos_token to end targets with; use one that has")

    def scratch_config_fields(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        # The decoder starts every target from BOS (or, for tokenizers without one, from padding as T5 does).
        return {"decoder_start_token_id": _decoder_start(tokenizer)}

    def check_config(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        if not getattr(config, "is_encoder_decoder", False):
            raise UserError(
                f"--task seq2seq needs an encoder-decoder model, but {config.model_type} is not one; "
                "use --model_type seq2seq (or an encoder-decoder --model_name_or_path)"
            )
        if getattr(config, "decoder_start_token_id", None) is None:
            config.decoder_start_token_id = _decoder_start(tokenizer)

    def prepare_datasets(self, raw, tokenizer, config, data_args) -> DatasetDict:
        max_source_length, self.max_target_length = _lengths(self.finetune_args, config)
        return raw.map(
            tokenize_pairs,
            batched=True,
            remove_columns=[SOURCE, TARGET],
            fn_kwargs={
                "tokenizer": tokenizer,
                "max_source_length": max_source_length,
                "max_target_length": self.max_target_length,
            },
            desc="Tokenizing sources and targets",
        )

    def data_collator(self, tokenizer, model):
        return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=IGNORE_INDEX)

    def compute_metrics(self, tokenizer):
        return seq2seq_metrics(tokenizer)

    def prepare_model(self, model, tokenizer, from_pretrained: bool) -> None:
        if not from_pretrained:
            _set_generation_config(model, tokenizer, self.max_target_length, saving=False)

    def before_save(self, trainer, tokenizer, from_pretrained: bool) -> None:
        if not from_pretrained:
            _set_generation_config(trainer.model, tokenizer, self.max_target_length, saving=True)


def _decoder_start(tokenizer: PreTrainedTokenizerBase) -> int | None:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.pad_token_id


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
    return run_task(Seq2SeqTask(finetune_args), model_args, data_args, training_args, callbacks=callbacks)
