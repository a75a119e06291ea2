"""TRL's `SFTTrainer` with its default settings (activation checkpointing on, packing off, loss on every token)
trains each causal family from a saved folder, as TRL's quick start does with a Hub model id."""

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

from .families import tiny_model


@pytest.mark.parametrize("family", ["lstm", "transformer"])
def test_sft_trainer_with_default_settings_trains(family, tmp_path, tiny_tokenizer_path, tiny_tokenizer):
    tiny_model(family, tiny_tokenizer).save_pretrained(tmp_path / "model")
    lines = ["To be, or not to be, that is the question.", "Whether 'tis nobler in the mind to suffer."]
    train_dataset = Dataset.from_dict({"text": lines * 8})
    args = SFTConfig(
        output_dir=str(tmp_path / "sft"),
        max_steps=6,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
    )
    assert args.gradient_checkpointing  # TRL's default, which the RNN used to refuse
    trainer = SFTTrainer(
        model=str(tmp_path / "model"),
        args=args,
        train_dataset=train_dataset,
        processing_class=AutoTokenizer.from_pretrained(tiny_tokenizer_path),
    )
    before = {name: p.detach().clone() for name, p in trainer.model.named_parameters()}
    trainer.train()
    assert trainer.model.model.gradient_checkpointing
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(torch.isfinite(torch.tensor(losses))), losses
    assert losses[-1] < losses[0], losses
    changed = [name for name, p in trainer.model.named_parameters() if not torch.equal(p, before[name])]
    assert changed, "no parameter was updated"
