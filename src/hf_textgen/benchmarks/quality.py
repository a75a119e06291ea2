"""Comparison 5: validation loss against wall-clock time at nanoGPT's CPU setting, char-level.

nanoGPT's `shakespeare_char` CPU recipe: 4 layers, 4 heads, 128 wide, 64-token context, batch 12, 2,000 steps,
lr 1e-3 (100 warm-up steps, cosine decay to 1e-4), AdamW betas (0.9, 0.99), weight decay 0.1 on matrices,
gradient clipping at 1.0, no dropout; it publishes a validation loss of 1.88. Ours runs that recipe on the
bundled corpus (nine plays to train, *Much Ado About Nothing* to validate, so not nanoGPT's exact split) with
the project's char tokenizer, for our Transformer, our RNN in each cell type (LSTM, GRU, Elman RNN) and
transformers' Llama of our Transformer's shape. Their steps are interleaved (one each, in turn) so all see the
same machine load; each model's clock counts only its own training steps, not the evaluations.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

NANOGPT_REFERENCE = {
    "val_loss": 1.88,
    "steps": 2000,
    "source": "nanoGPT README, shakespeare_char on a CPU (MacBook), 4x4x128, block 64, batch 12, ~3 minutes",
}


@dataclass
class CharCorpus:
    """The bundled corpus as character ids.

    Attributes:
        tokenizer: The project's char-level tokenizer, trained on the train split.
        train_ids: `(num_train_chars,)` token ids of the training text.
        validation_ids: `(num_validation_chars,)` token ids of the validation text.
    """

    tokenizer: PreTrainedTokenizerFast
    train_ids: torch.Tensor
    validation_ids: torch.Tensor


def encode(tokenizer: PreTrainedTokenizerFast, text: str) -> torch.Tensor:
    """All of `text` as a flat tensor of ids (no special tokens)."""
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=torch.long)


def load_char_corpus() -> CharCorpus:
    """Read the bundled corpus and encode it with a char tokenizer trained on its train split."""
    from hf_textgen.data import bundled_corpus_files, train_tokenizer

    files = bundled_corpus_files()
    train_text = Path(files["train"]).read_text(encoding="utf-8")
    validation_text = Path(files["validation"]).read_text(encoding="utf-8")
    tokenizer = train_tokenizer(train_text.splitlines(keepends=True), tokenizer_type="char", vocab_size=None)
    return CharCorpus(tokenizer, encode(tokenizer, train_text), encode(tokenizer, validation_text))


def random_batch(ids: torch.Tensor, batch_size: int, context: int, generator: torch.Generator) -> torch.Tensor:
    """`(batch_size, context + 1)` random windows of `ids`, as nanoGPT's `get_batch` draws them."""
    starts = torch.randint(0, len(ids) - context - 1, (batch_size,), generator=generator)
    return torch.stack([ids[start : start + context + 1] for start in starts.tolist()])


def nanogpt_lr(step: int, max_lr: float, min_lr: float, warmup: int, decay_steps: int) -> float:
    """nanoGPT's schedule: linear warm-up, cosine decay to `min_lr` at `decay_steps`, then flat."""
    if step < warmup:
        return max_lr * (step + 1) / (warmup + 1)
    if step > decay_steps:
        return min_lr
    progress = (step - warmup) / max(1, decay_steps - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def nanogpt_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.AdamW:
    """AdamW as nanoGPT sets it: weight decay 0.1 on matrices only (not on norms or biases), betas (0.9, 0.99)."""
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    groups = [
        {"params": [parameter for parameter in parameters if parameter.dim() >= 2], "weight_decay": 0.1},
        {"params": [parameter for parameter in parameters if parameter.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99))


def causal_lm_loss(model: torch.nn.Module, window: torch.Tensor) -> torch.Tensor:
    """Next-token loss of a `(batch, context + 1)` window: inputs are its first `context` ids, targets the last."""
    logits = model(input_ids=window[:, :-1]).logits  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), window[:, 1:].flatten())


@torch.no_grad()
def mean_loss(model: torch.nn.Module, batches: list[torch.Tensor]) -> float:
    """Average next-token loss over fixed batches, in eval mode."""
    model.eval()
    losses = [causal_lm_loss(model, batch).item() for batch in batches]
    model.train()
    return sum(losses) / len(losses)


def swiglu_width(hidden: int) -> int:
    """8/3 of `hidden` rounded up to a multiple of 8: a SwiGLU layer that costs what a 4x GELU MLP costs."""
    return 8 * math.ceil(hidden * 8 / 3 / 8)


def build_quality_models(vocab_size: int, hidden: int, layers: int, heads: int, context: int) -> dict:
    """Our Transformer, our RNN (LSTM, GRU, Elman) and transformers' Llama at nanoGPT's size, tied, no dropout.

    The SwiGLU width is `swiglu_width(hidden)` so the Transformers have about nanoGPT's parameter count.
    """
    from hf_textgen import RNNConfig, RNNForCausalLM, TransformerConfig, TransformerForCausalLM

    intermediate = swiglu_width(hidden)
    sizes = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "intermediate_size": intermediate,
        "max_position_embeddings": context,
        "tie_word_embeddings": True,
    }

    def rnn(cell_type: str) -> RNNForCausalLM:
        return RNNForCausalLM(
            RNNConfig(
                vocab_size=vocab_size,
                hidden_size=hidden,
                num_hidden_layers=layers,
                cell_type=cell_type,
                dropout=0.0,
                tie_word_embeddings=True,
            )
        )

    # Built in this order so the first three draw the same random init as before the GRU and Elman RNN joined.
    models = {"transformer": TransformerForCausalLM(TransformerConfig(**sizes)), "lstm": rnn("lstm")}
    models["llama"] = LlamaForCausalLM(LlamaConfig(**sizes, num_key_value_heads=heads))
    models["gru"] = rnn("gru")
    models["elman_rnn"] = rnn("rnn")
    return models


def run_quality(
    corpus: CharCorpus,
    steps: int,
    eval_interval: int,
    eval_iters: int,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    context: int = 64,
    batch_size: int = 12,
    lr: float = 1e-3,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Train the models with nanoGPT's recipe, steps interleaved, recording validation loss vs time.

    Returns:
        `{"curves": {name: [{"step", "seconds", "train_loss", "val_loss"}, ...]}, "final": {...}, ...}`;
        `seconds` is the model's own cumulative training time at that step.
    """
    torch.manual_seed(seed)
    vocab_size = len(corpus.tokenizer)
    models = build_quality_models(vocab_size, hidden, layers, heads, context)
    optimizers = {name: nanogpt_optimizer(model, lr) for name, model in models.items()}
    for model in models.values():
        model.train()
    generator = torch.Generator().manual_seed(seed)
    validation_batches = [
        random_batch(corpus.validation_ids, batch_size, context, generator) for _ in range(eval_iters)
    ]
    warmup = min(100, steps // 10)
    clocks = dict.fromkeys(models, 0.0)
    curves = {name: [] for name in models}
    last_train_loss = dict.fromkeys(models, float("nan"))

    def evaluate(step: int) -> None:
        for name, model in models.items():
            val_loss = mean_loss(model, validation_batches)
            curves[name].append(
                {"step": step, "seconds": clocks[name], "train_loss": last_train_loss[name], "val_loss": val_loss}
            )
        log(f"  step {step}: " + ", ".join(f"{name} {curves[name][-1]['val_loss']:.3f}" for name in models))

    evaluate(0)
    for step in range(steps):
        batch = random_batch(corpus.train_ids, batch_size, context, generator)  # same batch for every model
        step_lr = nanogpt_lr(step, lr, lr / 10, warmup, steps)
        for name, model in models.items():
            for group in optimizers[name].param_groups:
                group["lr"] = step_lr
            start = time.perf_counter()
            loss = causal_lm_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
            last_train_loss[name] = loss.item()
            clocks[name] += time.perf_counter() - start
        if (step + 1) % eval_interval == 0 or step + 1 == steps:
            evaluate(step + 1)
    parameters = {name: sum(p.numel() for p in model.parameters()) for name, model in models.items()}
    return {
        "method": (
            f"nanoGPT shakespeare_char recipe: {layers} layers, {heads} heads, {hidden} wide, context {context}, "
            f"batch {batch_size}, {steps} steps, lr {lr} (warm-up {warmup}, cosine to {lr / 10}), AdamW (0.9, 0.99) "
            f"wd 0.1, clip 1.0, no dropout, fp32; char tokenizer ({vocab_size} tokens); validation = mean of "
            f"{eval_iters} fixed random batches of the validation play; plain PyTorch loop, models interleaved"
        ),
        "vocab_size": vocab_size,
        "parameters": parameters,
        "curves": curves,
        "final": {
            name: {"val_loss": curve[-1]["val_loss"], "seconds": curve[-1]["seconds"], "steps": steps}
            for name, curve in curves.items()
        },
        "nanogpt_reference": NANOGPT_REFERENCE,
    }
