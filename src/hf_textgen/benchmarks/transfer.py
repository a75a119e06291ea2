"""Comparison 6: what pretraining buys, measured where it matters (issue 14).

For the Transformer and the LSTM: pretrain one causal LM on the bundled training plays (nanoGPT's char-level
recipe), save it and load it back as a user would (`from_pretrained`), then fine-tune it on small amounts of task
data and, on exactly the same batches, the same architecture from random weights. Every task is built from the
bundled validation play (*Much Ado About Nothing*), which pretraining never sees: its first 75% gives the task's
training examples, its last 25% the held-out ones.

1. Low-resource language modelling: fine-tune on the first 1k / 4k / 16k characters; held-out loss per character
   and bits per byte.
2. Few-label classification, spelled or scrambled: is a passage of whole words as written, or with the inner
   letters of every word of 4+ letters shuffled ("Cmabrigde")? Both classes hold the same letters, word lengths and
   punctuation, so only knowing how words are spelled separates them: what a character-level LM learns, and what
   a model that has seen 32 labelled passages cannot know. (Word order, real vs word-shuffled passages, stayed
   near chance even for the pretrained models at this size.)
3. Prompt -> completion: the speaker's name line ("BENEDICK.\\n") -> the first line of their speech, loss on the
   completion only; held-out loss per completion character.

Each pretrained start fine-tunes with a `Recipe` (learning rate, warm-up, schedule, layer-wise learning rates,
head initialisation, pooling); each scratch start trains with the from-scratch recipe (nanoGPT's lr 1e-3). The
recipe is chosen by `run_recipe_ablation`, which tries the alternatives at one small size per task.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel
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
from hf_textgen.training.optimization import layerwise_parameter_groups

FAMILIES = ("transformer", "lstm")
TASKS = ("language_modeling", "classification", "prompt_completion")
TASK_TRAIN_FRACTION = 0.75  # of the validation play: task training pool; the rest is held out
CLASS_NAMES = ("spelled", "scrambled")


@dataclass(frozen=True)
class Recipe:
    """How one fine-tuning run sets its optimizer, schedule and classification head.

    Attributes:
        learning_rate: Peak learning rate (AdamW, betas 0.9 / 0.99).
        warmup_ratio: Fraction of the steps with a linear warm-up from 0.
        lr_scheduler_type: After warm-up: "linear" (to 0), "cosine" (to 0) or "constant".
        weight_decay: AdamW's decoupled weight decay on matrices (not on norms and biases).
        layerwise_lr_decay: ULMFiT's discriminative learning rates: the head and final norm get `learning_rate`,
            the top layer `learning_rate * decay`, the next one `* decay**2`, ..., the embeddings the smallest.
        frozen_ratio: Fraction of the steps (at the start) that train only the new head (ULMFiT's first stage).
        head_init: The new classification head: "normal" (the model's init) or "zero" (logits start at 0, so the
            first updates go to the head, not into the pretrained backbone).
        pooling: Classification summary of a passage: "last" (the last real token's hidden state) or "mean" (the
            mean over real tokens).
    """

    learning_rate: float
    warmup_ratio: float = 0.1
    lr_scheduler_type: str = "linear"
    weight_decay: float = 0.01
    layerwise_lr_decay: float = 1.0
    frozen_ratio: float = 0.0
    head_init: str = "normal"
    pooling: str = "last"

    def describe(self) -> str:
        parts = [f"lr {self.learning_rate:g}", f"warm-up {self.warmup_ratio:.0%}", self.lr_scheduler_type]
        if self.weight_decay != 0.01:
            parts.append(f"wd {self.weight_decay:g}")
        if self.layerwise_lr_decay != 1.0:
            parts.append(f"layer-wise lr x{self.layerwise_lr_decay:g}")
        if self.frozen_ratio:
            parts.append(f"head only for {self.frozen_ratio:.0%}")
        if self.head_init != "normal":
            parts.append(f"{self.head_init} head")
        if self.pooling != "last":
            parts.append(f"{self.pooling} pooling")
        return ", ".join(parts)


# From random weights: the project's from-scratch learning rate (nanoGPT's), same schedule shape.
SCRATCH_RECIPE = Recipe(learning_rate=1e-3, weight_decay=0.1)
# From a pretrained folder: the best of `run_recipe_ablation` for a new classification head (see the README's "What
# pretraining buys"), used here for every task; for language modelling one rate of 1e-4 measured better still, so
# `hf-textgen finetune` uses that for causal_lm / prompt_completion and the language-modelling gains here are
# conservative.
PRETRAINED_RECIPE = Recipe(learning_rate=1e-3, layerwise_lr_decay=0.5, pooling="mean")

# The alternatives `run_recipe_ablation` tries: the previous `finetune` default, then one change at a time.
ABLATION_RECIPES: dict[str, Recipe] = {
    "lr 1e-4, warm-up 5% (the previous default)": Recipe(learning_rate=1e-4, warmup_ratio=0.05),
    "lr 1e-3 (the from-scratch lr)": Recipe(learning_rate=1e-3),
    "lr 1e-4, zero-initialised head": Recipe(learning_rate=1e-4, head_init="zero"),
    "lr 1e-4, mean pooling": Recipe(learning_rate=1e-4, pooling="mean"),
    "lr 1e-3 at the top, x0.5 per layer down (ULMFiT)": Recipe(learning_rate=1e-3, layerwise_lr_decay=0.5),
    "ULMFiT layer-wise lr + mean pooling": PRETRAINED_RECIPE,
}


# ---------------------------------------------------------------------------------------------------------------
# The tasks
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class TransferTasks:
    """Every task's training pool and held-out set, as char ids.

    Attributes:
        lm_train: `(chars,)` the task text to fine-tune the LM on (its first N characters are used).
        lm_eval: `(windows, context + 1)` held-out windows.
        classification_train: Per class, a list of `(length,)` passages to draw labelled examples from.
        classification_eval: `(inputs, attention_mask, labels)`, right-padded.
        completion_train: `(prompt_ids, completion_ids)` pairs to draw examples from.
        completion_eval: Held-out `(prompt_ids, completion_ids)` pairs.
        bytes_per_char: UTF-8 bytes per character of the held-out LM text (for bits per byte).
    """

    lm_train: torch.Tensor
    lm_eval: torch.Tensor
    classification_train: list[list[torch.Tensor]]
    classification_eval: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    completion_train: list[tuple[torch.Tensor, torch.Tensor]]
    completion_eval: list[tuple[torch.Tensor, torch.Tensor]]
    bytes_per_char: float


def _word_passages(text: str, max_chars: int, rng: random.Random, count: int) -> list[str]:
    """`count` passages of whole space-separated words, each at most `max_chars` long, from random places."""
    words = text.split(" ")
    passages = []
    while len(passages) < count:
        start = rng.randrange(len(words))
        taken, length = [], -1
        for word in words[start:]:
            if length + 1 + len(word) > max_chars:
                break
            taken.append(word)
            length += 1 + len(word)
        if len(taken) >= 4 and length >= max_chars // 2:
            passages.append(" ".join(taken))
    return passages


def _scrambled(passage: str, rng: random.Random) -> str:
    """Every word of 4+ letters with its inner letters shuffled ("Cmabrigde" for "Cambridge"); the rest as is.

    The first and last letters stay, so the passage keeps its letters, words lengths and punctuation: only
    knowing how the words are spelled tells it from the real text.
    """
    words = []
    for word in passage.split(" "):
        if len(word) >= 4 and word.isalpha() and len(set(word[1:-1])) > 1:
            inner = list(word[1:-1])
            while "".join(inner) == word[1:-1]:
                rng.shuffle(inner)
            word = word[0] + "".join(inner) + word[-1]
        words.append(word)
    return " ".join(words)


def _speech_openings(text: str) -> list[tuple[str, str]]:
    """`(speaker line + newline, first line of the speech)` for every speech: "BENEDICK.\\n" -> "What, my dear..."."""
    lines = text.split("\n")
    pairs = []
    for index, line in enumerate(lines[:-1]):
        name = line.strip()
        following = lines[index + 1].strip()
        is_speaker = name.endswith(".") and name[:-1].replace(" ", "").replace("'", "").isalpha()
        if is_speaker and name[:-1].isupper() and len(name) > 2 and following and not following.startswith("["):
            pairs.append((name + "\n", following))
    return pairs


def build_tasks(corpus: CharCorpus, task_text: str, context: int, eval_size: int, seed: int = 0) -> TransferTasks:
    """Cut `task_text` (text pretraining never saw) into each task's training pool and held-out set.

    Args:
        corpus: Supplies the char tokenizer.
        task_text: The task text (the bundled validation play).
        context: Passage length limit in characters (the model's context).
        eval_size: Held-out examples per class (classification), held-out pairs (prompt -> completion) and
            held-out windows (language modelling).
        seed: Seeds the passage sampling and shuffling.
    """
    tokenizer = corpus.tokenizer
    cut = int(len(task_text) * TASK_TRAIN_FRACTION)
    cut = task_text.rfind("\n\n", 0, cut) + 2  # at a paragraph break, so no speech is split
    pool_text, held_out_text = task_text[:cut], task_text[cut:]
    rng = random.Random(seed)

    held_out_ids = encode(tokenizer, held_out_text)
    window_starts = torch.linspace(0, len(held_out_ids) - context - 1, eval_size).long().tolist()
    lm_eval = torch.stack([held_out_ids[start : start + context + 1] for start in window_starts])
    bytes_per_char = len(held_out_text.encode("utf-8")) / len(held_out_text)

    def classification_examples(text: str, per_class: int) -> list[list[torch.Tensor]]:
        # Different passages for the two classes: no real passage has its own scramble as a counterpart.
        passages = _word_passages(text.replace("\n", " "), context, rng, 2 * per_class)
        real = [encode(tokenizer, passage) for passage in passages[:per_class]]
        scrambled = [encode(tokenizer, _scrambled(passage, rng)) for passage in passages[per_class:]]
        return [real, scrambled]

    train_pool = classification_examples(pool_text, 2000)
    eval_real, eval_scrambled = classification_examples(held_out_text, eval_size)
    eval_inputs, eval_mask = _pad([*eval_real, *eval_scrambled], tokenizer.pad_token_id)
    eval_labels = torch.arange(2).repeat_interleave(eval_size)

    def completion_pairs(text: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        pairs = []
        for prompt, completion in _speech_openings(text):
            prompt_ids = encode(tokenizer, prompt)
            completion_ids = encode(tokenizer, completion + "\n")[: context + 1 - len(prompt_ids)]
            pairs.append((prompt_ids, completion_ids))
        return pairs

    completion_train = completion_pairs(pool_text)
    completion_eval = completion_pairs(held_out_text)
    rng.shuffle(completion_train)
    return TransferTasks(
        lm_train=encode(tokenizer, pool_text),
        lm_eval=lm_eval,
        classification_train=train_pool,
        classification_eval=(eval_inputs, eval_mask, eval_labels),
        completion_train=completion_train,
        completion_eval=completion_eval[:eval_size],
        bytes_per_char=bytes_per_char,
    )


def _pad(sequences: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest: `(batch, length)` ids and attention mask."""
    length = max(len(sequence) for sequence in sequences)
    inputs = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), length), dtype=torch.long)
    for row, sequence in enumerate(sequences):
        inputs[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return inputs, mask


def _completion_batch(pairs: list[tuple[torch.Tensor, torch.Tensor]], pad_id: int) -> dict[str, torch.Tensor]:
    """Prompt + completion, right-padded; labels are -100 on the prompt and the padding (completion-only loss)."""
    sequences = [torch.cat([prompt, completion]) for prompt, completion in pairs]
    inputs, mask = _pad(sequences, pad_id)
    labels = torch.full_like(inputs, -100)
    for row, (prompt, completion) in enumerate(pairs):
        labels[row, len(prompt) : len(prompt) + len(completion)] = completion
    return {"input_ids": inputs, "attention_mask": mask, "labels": labels}


# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------


def build_config(family: str, vocab_size: int, pad_token_id: int, hidden: int, layers: int, heads: int, context: int):
    """The bench's small Transformer (nanoGPT's CPU size) or LSTM of the same width and depth, tied embeddings."""
    from hf_textgen import RNNConfig, TransformerConfig

    common = {
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "tie_word_embeddings": True,
    }
    if family == "transformer":
        return TransformerConfig(
            **common,
            num_attention_heads=heads,
            intermediate_size=swiglu_width(hidden),
            max_position_embeddings=context,
            pad_token_id=pad_token_id,
        )
    return RNNConfig(**common, cell_type="lstm", dropout=0.0, pad_token_id=pad_token_id)


def _model_classes(family: str) -> tuple[type[PreTrainedModel], type[PreTrainedModel]]:
    from hf_textgen import (
        RNNForCausalLM,
        RNNForSequenceClassification,
        TransformerForCausalLM,
        TransformerForSequenceClassification,
    )

    if family == "transformer":
        return TransformerForCausalLM, TransformerForSequenceClassification
    return RNNForCausalLM, RNNForSequenceClassification


def pretrain(config, corpus: CharCorpus, steps: int, batch_size: int, context: int, seed: int, folder: Path) -> dict:
    """nanoGPT's char recipe on the training plays; the model is saved to `folder` with `save_pretrained`."""
    causal_lm_class, _ = _model_classes("transformer" if "transformer" in config.model_type else "lstm")
    torch.manual_seed(seed)
    model = causal_lm_class(config).train()
    optimizer = nanogpt_optimizer(model, 1e-3)
    generator = torch.Generator().manual_seed(seed)
    warmup = min(100, steps // 10)
    start = time.process_time()
    losses = []
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = nanogpt_lr(step, 1e-3, 1e-4, warmup, steps)
        loss = causal_lm_loss(model, random_batch(corpus.train_ids, batch_size, context, generator))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    cpu_seconds = time.process_time() - start
    transformers_logging.disable_progress_bar()  # "Writing model shards" would interleave with the bench's log
    try:
        model.save_pretrained(folder)
    finally:
        transformers_logging.enable_progress_bar()
    validation = [random_batch(corpus.validation_ids, batch_size, context, generator) for _ in range(10)]
    with torch.no_grad():
        model.eval()
        validation_loss = statistics.fmean(causal_lm_loss(model, batch).item() for batch in validation)
    return {
        "steps": steps,
        "tokens": steps * batch_size * context,
        "batch_size": batch_size,
        "context": context,
        "cpu_seconds": cpu_seconds,
        "final_train_loss": statistics.fmean(losses[-20:]),
        "validation_loss": validation_loss,
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
    }


def _load_quietly(model_class: type[PreTrainedModel], folder: Path, **kwargs) -> PreTrainedModel:
    """`from_pretrained` without the load report (which only says that a classification head is new)."""
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    try:
        return model_class.from_pretrained(folder, **kwargs)
    finally:
        transformers_logging.set_verbosity(verbosity)
        transformers_logging.enable_progress_bar()


def build_model(family: str, task: str, config, pretrained_folder: Path | None, recipe: Recipe, seed: int):
    """The model a run starts from: loaded from `pretrained_folder`, or built from `config` with random weights."""
    causal_lm_class, classification_class = _model_classes(family)
    model_class = classification_class if task == "classification" else causal_lm_class
    task_fields = (
        {"num_labels": len(CLASS_NAMES), "classifier_pooling": recipe.pooling} if task == "classification" else {}
    )
    torch.manual_seed(seed)
    if pretrained_folder is None:
        task_config = copy.deepcopy(config)
        for key, value in task_fields.items():
            setattr(task_config, key, value)
        model = model_class(task_config)
    else:
        model = _load_quietly(model_class, pretrained_folder, **task_fields)
    if task == "classification" and recipe.head_init == "zero":
        torch.nn.init.zeros_(model.score.weight)
    return model.train()


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning
# ---------------------------------------------------------------------------------------------------------------


def build_optimizer(model: PreTrainedModel, recipe: Recipe) -> torch.optim.AdamW:
    """AdamW (betas 0.9 / 0.99) with the recipe's layer-wise learning rates, decay on matrices only.

    The groups are `hf_textgen.training.optimization`'s, the same that `hf-textgen finetune` trains with.
    """
    groups = layerwise_parameter_groups(model, recipe.learning_rate, recipe.layerwise_lr_decay, recipe.weight_decay)
    return torch.optim.AdamW(groups, lr=recipe.learning_rate, betas=(0.9, 0.99))


def lr_factor(recipe: Recipe, step: int, steps: int) -> float:
    """The schedule's multiplier at `step` (0-based) of `steps`: warm-up, then linear / cosine / constant."""
    warmup = round(recipe.warmup_ratio * steps)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, steps - warmup)
    if recipe.lr_scheduler_type == "linear":
        return 1.0 - progress
    if recipe.lr_scheduler_type == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def _loss(model: PreTrainedModel, task: str, batch) -> torch.Tensor:
    if task == "language_modeling":
        return causal_lm_loss(model, batch)
    if task == "classification":
        inputs, mask, labels = batch
        return torch.nn.functional.cross_entropy(_class_logits(model, inputs, mask), labels)
    return model(**batch).loss


def _class_logits(model: PreTrainedModel, inputs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return model(input_ids=inputs, attention_mask=mask).logits  # (B, classes), pooled by config.classifier_pooling


def finetune(model: PreTrainedModel, task: str, batches: list, recipe: Recipe) -> None:
    """Train `model` on `batches` (one step each) with `recipe`; gradients clipped at 1.0."""
    optimizer = build_optimizer(model, recipe)
    steps = len(batches)
    frozen_steps = round(recipe.frozen_ratio * steps)
    for step, batch in enumerate(batches):
        factor = lr_factor(recipe, step, steps)
        for group in optimizer.param_groups:
            frozen = step < frozen_steps and not group["is_top"]
            group["lr"] = 0.0 if frozen else recipe.learning_rate * group["lr_scale"] * factor
        loss = _loss(model, task, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


@torch.no_grad()
def evaluate(model: PreTrainedModel, task: str, tasks: TransferTasks, pad_id: int) -> dict:
    """Held-out metrics: LM loss per char and bits per byte; accuracy; completion loss per char."""
    model.eval()
    try:
        if task == "language_modeling":
            loss = statistics.fmean(causal_lm_loss(model, chunk).item() for chunk in tasks.lm_eval.split(64))
            return {"loss": loss, "bits_per_byte": loss / math.log(2) / tasks.bytes_per_char}
        if task == "classification":
            inputs, mask, labels = tasks.classification_eval
            correct, loss_sum = 0, 0.0
            for rows in torch.arange(len(labels)).split(64):
                logits = _class_logits(model, inputs[rows], mask[rows])
                correct += (logits.argmax(-1) == labels[rows]).sum().item()
                loss_sum += torch.nn.functional.cross_entropy(logits, labels[rows], reduction="sum").item()
            return {"accuracy": correct / len(labels), "loss": loss_sum / len(labels)}
        loss_sum, count = 0.0, 0
        for start in range(0, len(tasks.completion_eval), 64):
            batch = _completion_batch(tasks.completion_eval[start : start + 64], pad_id)
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            targets = batch["labels"][:, 1:]
            loss_sum += torch.nn.functional.cross_entropy(
                logits[:, :-1].flatten(0, 1).float(), targets.flatten(), ignore_index=-100, reduction="sum"
            ).item()
            count += (targets != -100).sum().item()
        return {"loss": loss_sum / count}
    finally:
        model.train()


def task_batches(
    task: str, tasks: TransferTasks, amount: int, steps: int, batch_size: int, context: int, seed: int, pad_id: int
) -> list:
    """The fine-tuning batches of one run: drawn from the first `amount` characters / examples per class / pairs.

    The same seed gives the same batches, so the pretrained and the scratch start see identical data.
    """
    generator = torch.Generator().manual_seed(seed)
    if task == "language_modeling":
        text = tasks.lm_train[:amount]
        return [random_batch(text, batch_size, context, generator) for _ in range(steps)]
    if task == "classification":
        rng = random.Random(seed)
        labelled = [
            (passage, label) for label, pool in enumerate(tasks.classification_train) for passage in pool[:amount]
        ]
        batches, order = [], []
        while len(batches) < steps:
            if len(order) < batch_size:
                order += rng.sample(labelled, len(labelled))  # epochs, reshuffled
            chosen, order = order[:batch_size], order[batch_size:]
            inputs, mask = _pad([passage for passage, _ in chosen], pad_id)
            batches.append((inputs, mask, torch.tensor([label for _, label in chosen])))
        return batches
    rng = random.Random(seed)
    pairs = tasks.completion_train[:amount]
    batches, order = [], []
    while len(batches) < steps:
        if len(order) < batch_size:
            order += rng.sample(pairs, len(pairs))
        chosen, order = order[:batch_size], order[batch_size:]
        batches.append(_completion_batch(chosen, pad_id))
    return batches


def _summary(values: list[float]) -> dict:
    return {
        "values": values,
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


HEADLINE = {"language_modeling": "bits_per_byte", "classification": "accuracy", "prompt_completion": "loss"}
HIGHER_IS_BETTER = {"language_modeling": False, "classification": True, "prompt_completion": False}


@dataclass
class TransferSetup:
    """What every fine-tuning run shares: the tasks, the pretrained folders and the model sizes.

    Attributes:
        corpus: The char-level corpus (tokenizer, pretraining text).
        tasks: The tasks built from the text pretraining never saw.
        folder: Holds one pretrained model folder per family (`<folder>/<family>`).
        configs: Per family, the config every start uses (scratch starts build from it).
        context: Characters per passage / window.
        batch_size: Fine-tuning batch size.
    """

    corpus: CharCorpus
    tasks: TransferTasks
    folder: Path
    configs: dict
    context: int
    batch_size: int

    @property
    def pad_id(self) -> int:
        return self.corpus.tokenizer.pad_token_id

    def run(
        self, family: str, task: str, amount: int, steps: int, seed: int, recipe: Recipe, pretrained: bool
    ) -> dict:
        """One fine-tuning run; returns its held-out metrics."""
        batches = task_batches(task, self.tasks, amount, steps, self.batch_size, self.context, seed, self.pad_id)
        source = self.folder / family if pretrained else None
        model = build_model(family, task, self.configs[family], source, recipe, seed)
        finetune(model, task, batches, recipe)
        return evaluate(model, task, self.tasks, self.pad_id)


def prepare(
    corpus: CharCorpus,
    task_text: str,
    folder: Path,
    families: tuple[str, ...] = FAMILIES,
    pretrain_steps: int = 1500,
    hidden: int = 128,
    layers: int = 4,
    heads: int = 4,
    context: int = 64,
    pretrain_batch_size: int = 12,
    finetune_batch_size: int = 16,
    eval_size: int = 200,
    log: Callable[[str], None] = print,
) -> tuple[TransferSetup, dict]:
    """Build the tasks and pretrain each family once into `folder/<family>` (a folder already there is reused).

    Returns:
        The setup, and per family the pretraining record (steps, tokens, CPU seconds, losses, parameters).
    """
    tasks = build_tasks(corpus, task_text, context, eval_size)
    pad_id = corpus.tokenizer.pad_token_id
    configs, pretraining = {}, {}
    for family in families:
        configs[family] = build_config(family, len(corpus.tokenizer), pad_id, hidden, layers, heads, context)
        family_folder = Path(folder) / family
        if (family_folder / "config.json").exists():
            log(f"  {family}: reusing the pretrained model in {family_folder}")
            pretraining[family] = {"reused": str(family_folder)}
            continue
        info = pretrain(configs[family], corpus, pretrain_steps, pretrain_batch_size, context, 0, family_folder)
        pretraining[family] = info
        log(
            f"  {family}: pretrained {info['steps']} steps ({info['tokens']:,} tokens) in "
            f"{info['cpu_seconds']:.0f} CPU s; validation loss {info['validation_loss']:.3f}"
        )
    setup = TransferSetup(corpus, tasks, Path(folder), configs, context, finetune_batch_size)
    return setup, pretraining


def run_transfer(
    setup: TransferSetup,
    amounts: dict[str, tuple[int, ...]],
    finetune_steps: dict[str, int],
    seeds: tuple[int, ...] = (0, 1, 2),
    recipes: dict[str, Recipe] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Fine-tune every (family, task, amount, seed) from the pretrained folder and from scratch.

    Args:
        setup: From `prepare`.
        amounts: Per task, the task-data sizes (characters for language modelling, labelled examples per class
            for classification, pairs for prompt -> completion).
        finetune_steps: Per task, the steps of every run (one batch each).
        seeds: Fine-tuning seeds (batches, new heads, scratch weights); both starts share each seed's batches.
        recipes: `{"pretrained": ..., "scratch": ...}`; default `PRETRAINED_RECIPE` and `SCRATCH_RECIPE`.

    Returns:
        `results[family][task][amount][start][metric]` = per-seed values, mean and standard deviation; the
        recipes; and `targets`: per family and task, the gain at the smallest amount against 3x the spread.
    """
    recipes = recipes or {"pretrained": PRETRAINED_RECIPE, "scratch": SCRATCH_RECIPE}
    results: dict = {}
    start_cpu = time.process_time()
    for family in setup.configs:
        for task, task_amounts in amounts.items():
            for amount in task_amounts:
                by_start = {}
                for start, recipe in recipes.items():
                    runs = [
                        setup.run(family, task, amount, finetune_steps[task], seed, recipe, start != "scratch")
                        for seed in seeds
                    ]
                    by_start[start] = {name: _summary([run[name] for run in runs]) for name in runs[0]}
                results.setdefault(family, {}).setdefault(task, {})[str(amount)] = by_start
                metric = HEADLINE[task]
                log(
                    f"  {family} {task} {amount}: "
                    + ", ".join(f"{s} {v[metric]['mean']:.3f} +- {v[metric]['std']:.3f}" for s, v in by_start.items())
                )
    targets = []
    for family, by_task in results.items():
        for task, by_amount in by_task.items():
            if task == "prompt_completion":
                continue  # the target is on language modelling and classification
            smallest = by_amount[str(min(amounts[task]))]
            pretrained, scratch = smallest["pretrained"][HEADLINE[task]], smallest["scratch"][HEADLINE[task]]
            gain = pretrained["mean"] - scratch["mean"]
            if not HIGHER_IS_BETTER[task]:
                gain = -gain
            spread = max(pretrained["std"], scratch["std"])
            targets.append(
                {
                    "family": family,
                    "task": task,
                    "amount": min(amounts[task]),
                    "metric": HEADLINE[task],
                    "gain": gain,
                    "spread": spread,
                    "met": gain > 3 * spread,
                }
            )
    return {
        "method": _method(setup, amounts, finetune_steps, seeds, recipes),
        "amounts": {task: list(values) for task, values in amounts.items()},
        "finetune_steps": dict(finetune_steps),
        "seeds": list(seeds),
        "recipes": {
            name: {**dataclasses.asdict(recipe), "description": recipe.describe()} for name, recipe in recipes.items()
        },
        "results": results,
        "targets": targets,
        "finetune_cpu_seconds": time.process_time() - start_cpu,
    }


def run_recipe_ablation(
    setup: TransferSetup,
    amounts: dict[str, int],
    finetune_steps: dict[str, int],
    seeds: tuple[int, ...] = (0, 1, 2),
    recipes: dict[str, Recipe] | None = None,
    log: Callable[[str], None] = print,
) -> dict:
    """Fine-tune the pretrained models with each recipe at one (small) amount per task; scratch as the baseline.

    Returns:
        `results[family][task][recipe name][metric]` (per-seed values, mean, std) and the recipes tried.
    """
    recipes = {"from scratch (lr 1e-3)": SCRATCH_RECIPE, **(recipes or ABLATION_RECIPES)}
    results: dict = {}
    start_cpu = time.process_time()
    for family in setup.configs:
        for task, amount in amounts.items():
            done: dict[tuple, list[dict]] = {}
            for name, recipe in recipes.items():
                pretrained = recipe is not SCRATCH_RECIPE
                steps = finetune_steps[task]
                # Pooling and head initialisation only change classification: a language-modelling run that
                # differs only in them is the same run, so it is not repeated.
                key = (pretrained, dataclasses.replace(recipe, pooling="last", head_init="normal"))
                if task == "classification" or key not in done:
                    done[key] = [setup.run(family, task, amount, steps, seed, recipe, pretrained) for seed in seeds]
                runs = done[key]
                summary = {metric: _summary([run[metric] for run in runs]) for metric in runs[0]}
                results.setdefault(family, {}).setdefault(task, {})[name] = summary
                metric = HEADLINE[task]
                log(f"  {family} {task} {amount}: {name}: {_mean_std(summary[metric])}")
    return {
        "amounts": dict(amounts),
        "finetune_steps": dict(finetune_steps),
        "seeds": list(seeds),
        "recipes": {
            name: {**dataclasses.asdict(recipe), "description": recipe.describe()} for name, recipe in recipes.items()
        },
        "results": results,
        "finetune_cpu_seconds": time.process_time() - start_cpu,
    }


def _mean_std(summary: dict) -> str:
    return f"{summary['mean']:.3f} +- {summary['std']:.3f}"


def _method(setup: TransferSetup, amounts, finetune_steps, seeds, recipes) -> str:
    return (
        f"task text: the bundled validation play (never seen in pretraining), first {TASK_TRAIN_FRACTION:.0%} for "
        f"training, the rest held out; context {setup.context} chars, fine-tuning batch {setup.batch_size}, "
        f"steps {finetune_steps}, seeds {list(seeds)}; "
        + "; ".join(f"{name}: {recipe.describe()}" for name, recipe in recipes.items())
    )
