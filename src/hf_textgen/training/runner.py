"""The one Trainer runner every training task goes through: pretraining and each `finetune --task`.

A `Task` supplies what differs between tasks: how its data are loaded and tokenized, the texts a tokenizer is
trained on, the model class and its config fields, the collator and the metrics. `run_task` owns everything else,
in this order, so each task gets the same checks and the same output folder:

1. logging, `check_training_args`, where to resume from, the seed;
2. the raw data (inside `main_process_first`, so the main process fills the datasets cache first);
3. the tokenizer: loaded, or trained on the main process and broadcast to the others (one vocabulary for all);
4. the model config (from the checkpoint, a saved model, `--config_name`, or a small preset plus
   `--config_overrides`) and every check of it against the tokenizer;
5. the tokenized datasets (inside `main_process_first`), then the model;
6. only then the output folder, the `Trainer`, training with resume, evaluation, and the finished folder
   (weights, tokenizer, metrics, loss curves, model card) through `finish`.

Every user mistake before step 6 is a `UserError`, and nothing has been written yet.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import datasets
import torch
import transformers
from transformers import (
    AutoConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    set_seed,
)

from hf_textgen.data import DataArguments
from hf_textgen.errors import UserError
from hf_textgen.evaluation.perplexity import perplexity
from hf_textgen.generation import max_positions
from hf_textgen.training.arguments import ModelArguments, warn_if_fsdp_runs_as_ddp
from hf_textgen.training.common import (
    DEFAULT_MODEL_TYPE,
    build_config,
    check_local_path,
    check_tokenizer_fits,
    check_training_args,
    last_complete_checkpoint,
    load_model,
    load_tokenizer,
    prepare_output_dir,
    resolve_resume_checkpoint,
    special_token_ids,
    train_tokenizer_on,
)
from hf_textgen.training.interrupt import StopOnSignal, TrainingInterrupted, stop_on_signal
from hf_textgen.training.lora import PeftArguments, apply_lora, check_peft_available, merge_lora
from hf_textgen.training.optimization import layerwise_adamw
from hf_textgen.training.results import RankSyncCallback, finish

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100  # label value the cross-entropy loss skips


class Task:
    """What one training task supplies to `run_task`. Subclasses set the class attributes and override the hooks.

    Attributes:
        name: The task name written into the model card (`causal_lm`, `prompt_completion`, ...).
        auto_class: The transformers Auto class that builds or loads the model (e.g. `AutoModelForCausalLM`).
        trainer_class: `Trainer`, or `Seq2SeqTrainer` for generation during evaluation.
        default_model_type: The model_type trained from scratch without `--model_type` / `--config_name`; None
            makes naming a model mandatory.
        reports_perplexity: Whether evaluation adds `perplexity` (exp of the per-token `eval_loss`).
        pads_batches: Whether batches are padded (the config then needs a `pad_token_id`).
        layerwise_lr_decay: Below 1, the optimizer gives each layer this factor of the learning rate of the layer
            above it (`hf_textgen.training.optimization`); 1 trains every weight at the same rate.
    """

    name: str
    auto_class: type
    trainer_class: type = Trainer
    default_model_type: str | None = DEFAULT_MODEL_TYPE
    reports_perplexity: bool = True
    pads_batches: bool = True
    layerwise_lr_decay: float = 1.0

    def check_arguments(self, model_args: ModelArguments, data_args: DataArguments, training_args) -> None:
        """Refuse argument combinations the task cannot train with (before anything is loaded)."""

    def load_data(self, data_args: DataArguments, cache_dir: str | None) -> datasets.DatasetDict:
        """The raw "train" / "validation" splits."""
        raise NotImplementedError

    def text_columns(self) -> tuple[str, ...]:
        """The raw data's text columns: the model card detects their languages and takes its prompt from the first."""
        return ("text",)

    def text_reading(self) -> dict[str, Any] | None:
        """How plain training text was cut into documents (`training_data.json`'s `text_reading`), once `load_data`
        has run; None for a task trained on rows (pairs, labelled examples)."""
        return None

    def tokenizer_texts(self, raw: datasets.DatasetDict) -> Iterator[str] | None:
        """The texts a new tokenizer is trained on, or None when the task needs a given tokenizer."""
        return None

    def check_tokenizer(self, tokenizer: PreTrainedTokenizerBase) -> None:
        """Refuse a tokenizer the task cannot use (e.g. one without an EOS token to end targets with)."""

    def config_fields(self, raw: datasets.DatasetDict, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        """Config fields the task sets on a new config, and on a loaded one (e.g. `num_labels`)."""
        return {}

    def scratch_config_fields(self, tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
        """Config fields the task sets only on a model trained from scratch."""
        return {}

    def check_config(self, config: PretrainedConfig, tokenizer: PreTrainedTokenizerBase) -> None:
        """Refuse a config without the task's head; complete fields the task needs."""

    def prepare_datasets(
        self,
        raw: datasets.DatasetDict,
        tokenizer: PreTrainedTokenizerBase,
        config: PretrainedConfig,
        data_args: DataArguments,
    ) -> datasets.DatasetDict:
        """Tokenize the raw splits into model inputs (runs inside `main_process_first`)."""
        raise NotImplementedError

    def model_max_length(self) -> int | None:
        """The saved tokenizer's `model_max_length` when the model sets no limit (an RNN); None keeps it."""
        return None

    def data_collator(self, tokenizer: PreTrainedTokenizerBase, model) -> Callable:
        raise NotImplementedError

    def compute_metrics(self, tokenizer: PreTrainedTokenizerBase) -> Callable | None:
        return None

    def prepare_model(self, model, tokenizer: PreTrainedTokenizerBase, from_pretrained: bool) -> None:
        """Adjust a freshly built or loaded model before training (e.g. its generation defaults)."""

    def before_save(self, trainer: Trainer, tokenizer: PreTrainedTokenizerBase, from_pretrained: bool) -> None:
        """Last changes to the trained model before the final folder is written."""


def evaluation_at_last_step(trainer: transformers.Trainer) -> dict[str, float] | None:
    """The metrics of the evaluation the Trainer ran at the last step, if it did (`eval_steps` dividing `max_steps`).

    The weights have not changed since (unless `load_best_model_at_end` loaded another checkpoint), so evaluating
    again would only repeat it and add a second entry to the log history: the demo's validation took 4-7 s twice.

    Returns:
        What `Trainer.evaluate` returned then (its log entry without `step`), or None.
    """
    if trainer.args.load_best_model_at_end:
        return None
    for entry in reversed(trainer.state.log_history):
        if "eval_loss" in entry:
            if entry.get("step") != trainer.state.global_step:
                return None
            return {key: value for key, value in entry.items() if key != "step"}
    return None


def setup_logging(training_args: transformers.TrainingArguments) -> None:
    """Log as the transformers examples do: info on the main process, warnings on the others."""
    logging.basicConfig(format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", datefmt="%H:%M:%S")
    level = training_args.get_process_log_level()
    logging.getLogger("hf_textgen").setLevel(level)
    datasets.utils.logging.set_verbosity(level)
    transformers.utils.logging.set_verbosity(level)
    transformers.utils.logging.enable_default_handler()
    transformers.utils.logging.enable_explicit_format()


def train_tokenizer_once(texts: Callable[[], Iterator[str]], model_args: ModelArguments) -> PreTrainedTokenizerBase:
    """Train the tokenizer on the main process only and hand it to the others: every rank must share one vocabulary.

    Args:
        texts: Called (on the main process only) for the training texts.
        model_args: `tokenizer_type`, `tokenizer_vocab_size`, `tokenizer_min_frequency`.
    """
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed or torch.distributed.get_world_size() == 1:
        return train_tokenizer_on(texts(), model_args)
    payload = [None]
    if torch.distributed.get_rank() == 0:
        payload = [train_tokenizer_on(texts(), model_args)]
    torch.distributed.broadcast_object_list(payload, src=0)
    return payload[0]


def limit_samples(dataset, count: int | None):
    """The first `count` rows of a map-style dataset (`--max_train_samples` / `--max_eval_samples`)."""
    if count is None or not isinstance(dataset, datasets.Dataset):
        return dataset
    return dataset.select(range(min(count, len(dataset))))


def _tokenizer(task: Task, raw, model_args: ModelArguments, training_args, resume_from: str | None):
    """Load the named tokenizer (a resumed run reads its own), or train one; returns `(tokenizer, trained)`."""
    source = model_args.tokenizer_name or resume_from or model_args.model_name_or_path
    if source:
        return load_tokenizer(source, model_args), False
    if not training_args.do_train:
        raise UserError("evaluation alone needs a trained model: pass --model_name_or_path")
    if task.tokenizer_texts(raw) is None:
        raise UserError(f"--task {task.name} from scratch needs a tokenizer: pass --tokenizer_name")
    return train_tokenizer_once(lambda: task.tokenizer_texts(raw), model_args), True


def _config(task: Task, raw, tokenizer, model_args: ModelArguments, resume_from: str | None):
    """The model config and whether the weights come from `--model_name_or_path`."""
    # A LoRA checkpoint (--use_peft) holds only the adapter: its base config is read from --model_name_or_path again.
    if resume_from and os.path.isfile(os.path.join(resume_from, "config.json")):
        # A resumed run reads the config it started with from its checkpoint, so nothing drifts.
        config = AutoConfig.from_pretrained(resume_from, trust_remote_code=model_args.trust_remote_code)
        from_pretrained = bool(model_args.model_name_or_path)
    else:
        fields = task.config_fields(raw, tokenizer)
        config, from_pretrained = build_config(
            model_args,
            default_model_type=task.default_model_type,
            **special_token_ids(tokenizer),
            **task.scratch_config_fields(tokenizer),
            **fields,
        )
        if from_pretrained:
            for key, value in fields.items():
                setattr(config, key, value)
        if task.pads_batches and config.pad_token_id is None:
            config.pad_token_id = tokenizer.pad_token_id  # batches are padded; classifiers pool the last real token
    task.check_config(config, tokenizer)
    check_tokenizer_fits(tokenizer, config)
    return config, from_pretrained


def run_task(
    task: Task,
    model_args: ModelArguments,
    data_args: DataArguments,
    training_args: transformers.TrainingArguments,
    callbacks: list[TrainerCallback] | None = None,
    peft_args: PeftArguments | None = None,
) -> dict[str, float]:
    """Train (and evaluate) a model for `task` and save the finished model folder (see the module docstring).

    Args:
        task: What the task supplies (data, tokenizer texts, model class, collator, metrics).
        model_args: Which model and tokenizer (see `ModelArguments`).
        data_args: Which data (see `hf_textgen.data.DataArguments`).
        training_args: Every `TrainingArguments` field, plus `overwrite_output_dir`.
        callbacks: Extra `TrainerCallback`s.
        peft_args: `--use_peft` and the LoRA settings (`hf_textgen.training.lora`); None trains every weight.

    Returns:
        The train and eval metrics together (`train_loss`, `eval_loss`, `perplexity`, task metrics, ...).

    Raises:
        UserError: Any mistake in the arguments, data, tokenizer or config; raised before the output folder is
            touched.
    """
    setup_logging(training_args)
    task.check_arguments(model_args, data_args, training_args)
    use_peft = peft_args is not None and peft_args.use_peft
    if use_peft:
        check_peft_available()
        if not model_args.model_name_or_path:
            raise UserError("--use_peft adapts a trained model: pass --model_name_or_path")
    check_training_args(training_args, streaming=data_args.streaming)
    warn_if_fsdp_runs_as_ddp(training_args)
    resume_from = resolve_resume_checkpoint(training_args) if training_args.do_train else None
    set_seed(training_args.seed)

    # The main process fills the datasets cache first; the others then read it instead of racing to write it.
    with training_args.main_process_first(desc="loading the raw data"):
        raw = task.load_data(data_args, model_args.cache_dir)

    if model_args.model_name_or_path:
        check_local_path(model_args.model_name_or_path, "--model_name_or_path")
    tokenizer, trained_tokenizer = _tokenizer(task, raw, model_args, training_args, resume_from)
    task.check_tokenizer(tokenizer)
    config, from_pretrained = _config(task, raw, tokenizer, model_args, resume_from)
    if not from_pretrained and not training_args.do_train:
        raise UserError("evaluation alone needs a trained model: pass --model_name_or_path")

    with training_args.main_process_first(desc="tokenizing"):
        processed = task.prepare_datasets(raw, tokenizer, config, data_args)
    train_dataset = eval_dataset = None
    if training_args.do_train:
        train_dataset = limit_samples(processed["train"], data_args.max_train_samples)
    if training_args.do_eval:
        eval_dataset = limit_samples(processed["validation"], data_args.max_eval_samples)
    if eval_dataset is None and training_args.eval_strategy != "no":
        training_args.eval_strategy = transformers.IntervalStrategy.NO
    # Set only now: set before tokenizing, it makes the tokenizer warn about every document longer than the context.
    limit = max_positions(config) or (task.model_max_length() if trained_tokenizer else None)
    if limit is not None:
        tokenizer.model_max_length = limit

    model = load_model(task.auto_class, config, model_args, from_pretrained)
    task.prepare_model(model, tokenizer, from_pretrained)
    if use_peft:
        model = apply_lora(model, task.auto_class, peft_args)
    if not from_pretrained:
        logger.info(
            "training a new %s model from scratch: %.2fM parameters", config.model_type, model.num_parameters() / 1e6
        )

    # ULMFiT's discriminative learning rates need their own parameter groups; the Trainer still schedules them.
    optimizer = None
    if task.layerwise_lr_decay != 1.0:
        try:
            optimizer = layerwise_adamw(
                model,
                training_args.learning_rate,
                task.layerwise_lr_decay,
                training_args.weight_decay,
                betas=(training_args.adam_beta1, training_args.adam_beta2),
                eps=training_args.adam_epsilon,
            )
        except ValueError as error:
            raise UserError(str(error)) from None

    # Every check has passed: from here on the output folder may be written.
    prepare_output_dir(training_args, resume_from)
    if not torch.cuda.is_available():
        training_args.dataloader_pin_memory = False  # nothing to pin for without an accelerator
    trainer = task.trainer_class(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=task.data_collator(tokenizer, model),
        compute_metrics=task.compute_metrics(tokenizer) if eval_dataset is not None else None,
        callbacks=[RankSyncCallback(), *(callbacks or [])],
        optimizers=(optimizer, None),
    )

    train_metrics = None
    if training_args.do_train:
        stopper = StopOnSignal()
        trainer.add_callback(stopper)
        with stop_on_signal(stopper):
            train_result = trainer.train(resume_from_checkpoint=resume_from)
        if stopper.signal_name is not None and trainer.state.global_step < trainer.state.max_steps:
            # Stopped early: the checkpoint just saved is the result; a finished-looking folder would be a lie.
            raise TrainingInterrupted(
                stopper.signal_name,
                trainer.state.global_step,
                trainer.state.max_steps,
                last_complete_checkpoint(training_args.output_dir),
            )
        train_metrics = dict(train_result.metrics)
        if model_args.model_name_or_path:
            train_metrics["base_model"] = model_args.model_name_or_path  # what the model was fine-tuned from
        if hasattr(train_dataset, "__len__"):
            train_metrics["train_samples"] = len(train_dataset)
    eval_metrics = None
    if training_args.do_eval:
        eval_metrics = evaluation_at_last_step(trainer) or trainer.evaluate()
        if task.reports_perplexity:
            eval_metrics["perplexity"] = perplexity(eval_metrics["eval_loss"])
        if hasattr(eval_dataset, "__len__"):
            eval_metrics["eval_samples"] = len(eval_dataset)
    task.before_save(trainer, tokenizer, from_pretrained)
    if use_peft and peft_args.merge_adapter:
        trainer.model = merge_lora(trainer.model)  # saved below as a complete model folder
    finish(
        trainer,
        train_metrics,
        eval_metrics,
        data_args=data_args,
        train_dataset=raw["train"],
        text_columns=task.text_columns(),
        text_reading=task.text_reading(),
        base_model=model_args.model_name_or_path,
        task=task.name,
    )
    return {**(train_metrics or {}), **(eval_metrics or {})}
