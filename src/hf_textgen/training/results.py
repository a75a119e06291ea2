"""What the final model folder holds besides the weights: metrics, trainer state, loss curves and a model card."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from hf_textgen.data.tokenizer_training import record_special_token_flags

logger = logging.getLogger(__name__)

LOSS_PLOT_NAME = "loss_curves.png"


def save_loss_plot(log_history: list[dict[str, Any]], path: str | os.PathLike) -> Path | None:
    """Plot the train and eval loss against the step from `trainer.state.log_history` into a PNG.

    Returns:
        The written path, or None when the history holds no loss to plot.
    """
    train = [(entry["step"], entry["loss"]) for entry in log_history if "loss" in entry and "step" in entry]
    evals = [(entry["step"], entry["eval_loss"]) for entry in log_history if "eval_loss" in entry]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and in CI
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    if train:
        axis.plot(*zip(*train), label="train loss")
    if evals:
        axis.plot(*zip(*evals), marker="o", label="eval loss")
    axis.set_xlabel("step")
    axis.set_ylabel("cross-entropy loss (nats/token)")
    axis.set_title("Loss curves")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def set_generation_defaults(model, tokenizer) -> None:
    """Store the generate engineer's sampling defaults in `model.generation_config` (saved with the model)."""
    from hf_textgen.generation import set_default_generation_config

    if model.can_generate():
        set_default_generation_config(model, tokenizer)


def write_model_card(output_dir: str | os.PathLike, **kwargs: Any) -> None:
    """Render README.md into the finished folder with the Hub engineer's card writer."""
    from hf_textgen.hub.model_card import write_model_card as write

    try:
        write(output_dir, **kwargs)
    except Exception as error:  # a card is documentation: never lose a trained model over it
        logger.warning("could not write the model card: %s", error)


def push_to_hub(trainer) -> None:
    """Push the finished folder in one commit with our model card (`hf_textgen.hub.push.push_training_output`).

    The Trainer's own final push would replace the card with its generic one and upload the pickled arguments.
    """
    from hf_textgen.hub.push import push_training_output

    result = push_training_output(trainer)
    logger.info("pushed %s to %s", trainer.args.output_dir, result.repo_url)


def save_training_facts(output_dir: str | os.PathLike, training_args, **kwargs: Any) -> None:
    """Record the run's hyperparameters and data for the model card (`hf_textgen.hub.training_facts`)."""
    from hf_textgen.hub.training_facts import save_training_facts as save

    try:
        save(output_dir, training_args, **kwargs)
    except Exception as error:  # documentation again: never lose a trained model over it
        logger.warning("could not record the training facts for the model card: %s", error)


def finish(
    trainer,
    train_metrics: dict[str, float] | None,
    eval_metrics: dict[str, float] | None,
    data_args=None,
    train_dataset=None,
    text_columns: tuple[str, ...] = ("text",),
    text_reading: dict[str, Any] | None = None,
    **card,
) -> None:
    """Save the final model folder as the transformers examples do, plus the loss plot and the model card.

    `trainer.save_model` writes weights (safetensors), config with `auto_map`, the model code, the tokenizer and
    the generation config; `save_metrics` writes `train_results.json` / `eval_results.json` / `all_results.json`;
    `save_state` writes `trainer_state.json`; `training_args.json` and `training_data.json` record the
    hyperparameters as set and the data (`data_args`, a sample of the raw `train_dataset`'s `text_columns`, how
    plain training text was cut into documents: `text_reading`) for the model card and `hf-textgen evaluate`.
    With `--push_to_hub` the finished folder is then pushed in one commit.
    """
    output_dir = trainer.args.output_dir
    if train_metrics is not None:
        # The Trainer switches the cache off for training (`--use_cache` defaults to False); the saved model is for
        # generation, where the cache is what makes it fast.
        config = getattr(trainer.model, "config", None)
        if config is not None and hasattr(config, "use_cache") and trainer.model.can_generate():
            config.use_cache = True
        # _internal_call: no push from here; with --push_to_hub the complete folder is pushed once, below.
        trainer.save_model(_internal_call=True)
        if trainer.is_world_process_zero() and getattr(trainer.processing_class, "bos_token_id", None) is not None:
            record_special_token_flags(trainer.processing_class, output_dir)
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
    if eval_metrics is not None:
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
    if trainer.is_world_process_zero():
        plot = save_loss_plot(trainer.state.log_history, Path(output_dir) / LOSS_PLOT_NAME)
        if plot is not None:
            logger.info("loss curves written to %s", plot)
        if train_metrics is not None:
            save_training_facts(
                output_dir,
                trainer.args,
                data_args=data_args,
                train_dataset=train_dataset,
                text_columns=text_columns,
                text_reading=text_reading,
            )
            # A LoRA adapter folder has no config.json to describe; PEFT's `save_pretrained` wrote its own card.
            if not hasattr(trainer.model, "peft_config"):
                write_model_card(output_dir, **card)
            if trainer.args.push_to_hub:
                push_to_hub(trainer)


def weights_sha256(model: torch.nn.Module) -> str:
    """A hash of every parameter and buffer, in name order: equal hashes mean bit-identical weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        # A byte view works for every dtype (bfloat16 has no numpy equivalent).
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class RankSyncCallback(TrainerCallback):
    """After distributed training, print every rank's weight hash and warn if the ranks disagree.

    Data parallelism must leave every replica bit-identical; a mismatch means diverged replicas (and a saved
    model that only reflects rank 0). One line per rank, `rank R/W weights sha256 HASH`, on stdout.
    """

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is None or not (torch.distributed.is_available() and torch.distributed.is_initialized()):
            return
        sharded = args.fsdp or args.deepspeed or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
        if sharded or os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true":
            return  # each rank holds a different shard by design
        world_size = torch.distributed.get_world_size()
        if world_size < 2:
            return
        rank = torch.distributed.get_rank()
        digest = weights_sha256(model)
        print(f"rank {rank}/{world_size} weights sha256 {digest}", flush=True)
        digests: list[str | None] = [None] * world_size
        torch.distributed.all_gather_object(digests, digest)
        if rank == 0 and len(set(digests)) > 1:
            logger.warning("the ranks hold different weights after training: %s", digests)
