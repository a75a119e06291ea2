"""Causal-LM pretraining (`hf-textgen pretrain`, and `finetune --task causal_lm`) as a task of the shared runner."""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterator
from typing import Any

import datasets
from transformers import AutoModelForCausalLM, PretrainedConfig, Trainer, TrainerCallback, default_data_collator
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

from hf_textgen.data import DataArguments, load_raw_datasets, resolve_block_size, tokenize_and_group
from hf_textgen.data.loading import TextReading
from hf_textgen.errors import UserError
from hf_textgen.evaluation.text_units import TextUnits, sample_text_units
from hf_textgen.generation import max_positions
from hf_textgen.hub.training_facts import text_reading_record
from hf_textgen.training.arguments import PRETRAIN_DEFAULTS, ModelArguments, PretrainingArguments, TrainingArguments  # noqa: F401  (re-exported)
from hf_textgen.training.results import set_generation_defaults
from hf_textgen.training.runner import Task, run_task

logger = logging.getLogger(__name__)

# Documents read from a streamed corpus to train a tokenizer on (a streamed corpus may be endless).
_STREAMING_TOKENIZER_DOCUMENTS = 100_000


def check_causal_lm(config: PretrainedConfig) -> None:
    """Refuse a config that has no causal-LM head (e.g. the encoder-decoder family)."""
    if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
        raise UserError(
            f"{config.model_type} has no causal language-model head to pretrain; use --model_type rnn or "
            "transformer (encoder-decoders are trained with `hf-textgen finetune --task seq2seq`)"
        )


class LanguageModelingTrainer(Trainer):
    """A `Trainer` whose evaluations also report `eval_bits_per_byte`, `eval_byte_perplexity` and
    `eval_word_perplexity` (lm-evaluation-harness's names), from `eval_loss` and the evaluated text's proportions.

    The figures are added to the logged metrics themselves, so they reach the progress logs, `trainer_state.json`'s
    `log_history`, `eval_results.json` and the model card alike.
    """

    def __init__(self, *args, text_units: TextUnits | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.text_units = text_units

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        if self.text_units is not None and "eval_loss" in logs:
            logs.update(self.text_units.metrics_from_loss(logs["eval_loss"], prefix="eval_"))
        super().log(logs, *args, **kwargs)


class CausalLMTask(Task):
    """Next-token prediction on running text packed into `--block_size` blocks (transformers' run_clm.py)."""

    name = "causal_lm"
    auto_class = AutoModelForCausalLM
    pads_batches = False  # blocks are equal-length

    def __init__(self):
        self.block_size: int | None = None
        self.text_units: TextUnits | None = None
        self.train_reading: TextReading | None = None

    @property
    def trainer_class(self):
        return functools.partial(LanguageModelingTrainer, text_units=self.text_units)

    def load_data(self, data_args: DataArguments, cache_dir: str | None):
        # Without validation data, `tokenize_and_group` splits packed blocks rather than documents: any corpus of
        # two blocks then splits into two non-empty parts, even a single document.
        readings: dict[str, TextReading] = {}
        raw = load_raw_datasets(data_args, cache_dir=cache_dir, split_validation=False, readings=readings)
        self.train_reading = readings.get("train")
        return raw

    def text_reading(self) -> dict[str, Any] | None:
        if self.train_reading is None:
            return None  # rows of a json / csv / parquet file or a dataset: each row was a document as it stood
        # `tokenize_and_group` ends every document with EOS before packing: evaluate scores each after an EOS too.
        return text_reading_record(self.train_reading, eos_after_each_document=True)

    def tokenizer_texts(self, raw) -> Iterator[str]:
        train = raw["train"]
        if isinstance(train, datasets.IterableDataset):
            yield from (example["text"] for example in train.take(_STREAMING_TOKENIZER_DOCUMENTS))
            return
        for start in range(0, len(train), 1000):
            yield from train[start : start + 1000]["text"]

    def check_config(self, config, tokenizer) -> None:
        check_causal_lm(config)

    def prepare_datasets(self, raw, tokenizer, config, data_args: DataArguments):
        self.block_size = resolve_block_size(data_args.block_size, max_positions(config))
        # Evaluated text: the validation split, or (split into blocks later) the training text it comes from.
        evaluated = raw["validation"] if "validation" in raw else raw["train"]
        self.text_units = sample_text_units((row["text"] for row in evaluated), tokenizer)
        if self.text_units is not None and (note := self.text_units.word_note()):
            logger.warning(note)  # evaluations will lack eval_word_perplexity: say why once, as `evaluate` does
        return tokenize_and_group(raw, tokenizer, self.block_size, data_args)

    def model_max_length(self) -> int | None:
        return self.block_size

    def data_collator(self, tokenizer, model):
        return default_data_collator  # blocks are equal-length: stacking is all a batch needs

    def prepare_model(self, model, tokenizer, from_pretrained: bool) -> None:
        if not from_pretrained:
            set_generation_defaults(model, tokenizer)


def run_pretrain(
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
) -> dict[str, float]:
    """Pretrain (or continue pretraining) a causal language model and save the finished folder.

    Every check (data, model type, tokenizer against the model, block size) runs before the output folder is
    touched. Then the `Trainer` trains, evaluating loss and perplexity, writing checkpoints, resuming from the
    last complete one when the output folder already holds some (see `hf_textgen.training.runner.run_task`).

    Args:
        model_args: Which model and tokenizer (see `ModelArguments`).
        data_args: Which text (see `hf_textgen.data.DataArguments`; the bundled corpus by default).
        training_args: Every `TrainingArguments` field, plus `overwrite_output_dir`.
        callbacks: Extra `TrainerCallback`s.

    Returns:
        The train and eval metrics together (`train_loss`, `eval_loss`, `perplexity`, ...).
    """
    return run_task(CausalLMTask(), model_args, data_args, training_args, callbacks=callbacks)
