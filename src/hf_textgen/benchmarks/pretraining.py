"""Comparison 6: what pretraining buys, on a classification task built from the bundled corpus.

The task: is a 64-character passage from a tragedy or a comedy (the First Folio's grouping of the nine
training plays: Hamlet, Macbeth, King Lear, Othello, Romeo and Juliet and Julius Caesar are tragedies; The
Tempest, A Midsummer Night's Dream and Twelfth Night comedies)? Each play's first 85% gives the training
passages and its last 15% the evaluation passages. A tiny Transformer LM is pretrained (char-level, nanoGPT's
recipe) on the training parts only, so no evaluation passage is ever seen. Then the same
`TransformerForSequenceClassification` is fine-tuned for the same number of steps, on the same batches, twice:
from the pretrained weights and from scratch. (Which of the nine plays, from 64 characters, stayed near chance
for both at a few hundred steps: too hard a task to show anything at this size.)
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers.utils import logging as transformers_logging

from hf_textgen.benchmarks.quality import (
    CharCorpus,
    causal_lm_loss,
    encode,
    nanogpt_lr,
    nanogpt_optimizer,
    random_batch,
    swiglu_width,
)

EVALUATION_FRACTION = 0.15
GENRES = ("tragedy", "comedy")
COMEDIES = ("THE TEMPEST", "A MIDSUMMER NIGHT'S DREAM", "TWELFTH NIGHT; OR, WHAT YOU WILL")


def split_plays(text: str) -> dict[str, str]:
    """The corpus cut into plays: each starts with its title, the line(s) before "by William Shakespeare"."""
    marker = re.compile(r"^by William Shakespeare\s*$", re.MULTILINE)
    starts = []
    for match in marker.finditer(text):
        before = text[: match.start()].rstrip("\n")
        title_start = before.rfind("\n") + 1
        starts.append((title_start, before[title_start:].strip()))
    plays = {}
    for index, (start, title) in enumerate(starts):
        end = starts[index + 1][0] if index + 1 < len(starts) else len(text)
        plays[title] = text[start:end]
    return plays


def _passages(ids: torch.Tensor, length: int, count: int) -> torch.Tensor:
    """`(count, length)` evenly spaced windows of `ids`."""
    starts = torch.linspace(0, len(ids) - length, count).long()
    return torch.stack([ids[start : start + length] for start in starts.tolist()])


def build_task(corpus: CharCorpus, train_text: str, passage_chars: int, eval_per_class: int) -> dict:
    """Encode every play, cut it into its training and evaluation parts, and group the parts by genre."""
    plays = split_plays(train_text)
    train_parts = {genre: [] for genre in GENRES}
    eval_parts = {genre: [] for genre in GENRES}
    for title, text in plays.items():
        genre = "comedy" if title in COMEDIES else "tragedy"
        ids = encode(corpus.tokenizer, text)
        cut = int(len(ids) * (1 - EVALUATION_FRACTION))
        train_parts[genre].append(ids[:cut])
        eval_parts[genre].append(ids[cut:])
    if not all(train_parts.values()):
        raise ValueError(f"the corpus must hold a tragedy and a comedy ({', '.join(COMEDIES)}) for this task")
    eval_inputs = [_passages(torch.cat(eval_parts[genre]), passage_chars, eval_per_class) for genre in GENRES]
    return {
        "labels": list(GENRES),
        "plays": {title: "comedy" if title in COMEDIES else "tragedy" for title in plays},
        "train_parts": [torch.cat(train_parts[genre]) for genre in GENRES],
        "eval_inputs": torch.cat(eval_inputs),  # (classes * eval_per_class, passage_chars)
        "eval_labels": torch.arange(len(GENRES)).repeat_interleave(eval_per_class),
    }


def _classification_batch(train_parts, batch_size, passage_chars, generator):
    """A batch with a uniformly drawn class per row and a random passage from that class's training text."""
    labels = torch.randint(0, len(train_parts), (batch_size,), generator=generator)
    inputs = []
    for label in labels.tolist():
        part = train_parts[label]
        start = torch.randint(0, len(part) - passage_chars, (1,), generator=generator).item()
        inputs.append(part[start : start + passage_chars])
    return torch.stack(inputs), labels


@torch.no_grad()
def _evaluate(model, inputs: torch.Tensor, labels: torch.Tensor, batch_size: int = 64) -> dict:
    model.eval()
    correct, loss_sum = 0, 0.0
    for start in range(0, len(inputs), batch_size):
        output = model(input_ids=inputs[start : start + batch_size], labels=labels[start : start + batch_size])
        correct += (output.logits.argmax(-1) == labels[start : start + batch_size]).sum().item()
        loss_sum += output.loss.item() * len(inputs[start : start + batch_size])
    model.train()
    return {"accuracy": correct / len(inputs), "loss": loss_sum / len(inputs)}


def run_pretraining(
    corpus: CharCorpus,
    train_text: str,
    pretrain_steps: int,
    finetune_steps: int,
    eval_interval: int,
    eval_per_class: int = 40,
    passage_chars: int = 64,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    pretrain_batch_size: int = 12,
    finetune_batch_size: int = 16,
    pretrain_lr: float = 1e-3,
    finetune_lr: float = 3e-4,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Pretrain a tiny LM, then fine-tune the classifier from it and from scratch for equal steps.

    The LM is pretrained with nanoGPT's recipe (see `quality`) with `passage_chars` as its context; the
    fine-tuning runs use AdamW from `finetune_lr` decaying linearly to 0, weight decay 0.01, clipping at 1.0
    (at a constant 1e-3 both classifiers kept collapsing to one class between evaluations).

    Returns:
        The task (labels, sizes), the pretraining loss, and per start ("pretrained", "scratch") the evaluation
        accuracy and loss curve against fine-tuning steps, with the final numbers and chance level.
    """
    from hf_textgen import TransformerConfig, TransformerForCausalLM, TransformerForSequenceClassification

    torch.manual_seed(seed)
    task = build_task(corpus, train_text, passage_chars, eval_per_class)
    tokenizer = corpus.tokenizer
    config = TransformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=swiglu_width(hidden),
        max_position_embeddings=passage_chars,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        num_labels=len(task["labels"]),
    )

    # Pretraining: next-character prediction on the training parts only.
    generator = torch.Generator().manual_seed(seed)
    lm_text = torch.cat(task["train_parts"])
    language_model = TransformerForCausalLM(config).train()
    optimizer = nanogpt_optimizer(language_model, pretrain_lr)
    start = time.perf_counter()
    warmup = min(100, pretrain_steps // 10)
    for step in range(pretrain_steps):
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(step, pretrain_lr, pretrain_lr / 10, warmup, pretrain_steps)
        loss = causal_lm_loss(language_model, random_batch(lm_text, pretrain_batch_size, passage_chars - 1, generator))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(language_model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    pretrain_seconds = time.perf_counter() - start
    pretrain_loss = loss.item()
    log(f"  pretrained {pretrain_steps} steps in {pretrain_seconds:.0f}s, final train loss {pretrain_loss:.3f}")

    # The user's path: save the LM, load it as a classifier (a new, randomly initialised `score` head).
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()  # the load report would only say that `score` is new
    transformers_logging.disable_progress_bar()
    try:
        with tempfile.TemporaryDirectory() as folder:
            language_model.save_pretrained(folder)
            pretrained = TransformerForSequenceClassification.from_pretrained(Path(folder), config=config)
    finally:
        transformers_logging.set_verbosity(verbosity)
        transformers_logging.enable_progress_bar()
    torch.manual_seed(seed + 1)
    classifiers = {"pretrained": pretrained.train(), "scratch": TransformerForSequenceClassification(config).train()}
    optimizers = {
        name: torch.optim.AdamW(model.parameters(), lr=finetune_lr, weight_decay=0.01)
        for name, model in classifiers.items()
    }
    curves = {name: [] for name in classifiers}

    def evaluate(step: int) -> None:
        for name, model in classifiers.items():
            curves[name].append({"step": step, **_evaluate(model, task["eval_inputs"], task["eval_labels"])})
        log(f"  fine-tune step {step}: " + ", ".join(f"{n} acc {c[-1]['accuracy']:.1%}" for n, c in curves.items()))

    generator = torch.Generator().manual_seed(seed + 2)
    evaluate(0)
    for step in range(finetune_steps):
        inputs, labels = _classification_batch(task["train_parts"], finetune_batch_size, passage_chars, generator)
        for name, model in classifiers.items():  # the same batch for both starts
            for group in optimizers[name].param_groups:
                group["lr"] = finetune_lr * (1 - step / finetune_steps)
            loss = model(input_ids=inputs, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
        if (step + 1) % eval_interval == 0 or step + 1 == finetune_steps:
            evaluate(step + 1)
    return {
        "method": (
            f"tragedy or comedy, from a {passage_chars}-char passage; last {EVALUATION_FRACTION:.0%} of each "
            f"play held out ({eval_per_class} evaluation passages per class); "
            f"{hidden}-wide {layers}-layer Transformer, LM pretrained {pretrain_steps} steps on the rest; both "
            f"classifiers fine-tuned {finetune_steps} steps, batch {finetune_batch_size}, AdamW lr {finetune_lr} "
            "linearly to 0, "
            "same batches"
        ),
        "labels": task["labels"],
        "plays": task["plays"],
        "chance_accuracy": 1 / len(task["labels"]),
        "pretrain": {"steps": pretrain_steps, "seconds": pretrain_seconds, "final_train_loss": pretrain_loss},
        "curves": curves,
        "final": {name: curve[-1] for name, curve in curves.items()},
    }
