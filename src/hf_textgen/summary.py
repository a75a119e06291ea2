"""The block every command ends with: what was made, where, the headline figures, and the next command to run.

========================================================================
model folder : out/zh/  (weights, tokenizer, model card README.md, loss_curves.png)
validation   : loss 3.021, perplexity 20.51
next         : hf-textgen generate --model_name_or_path out/zh --prompt 今天早上天气很好，
               hf-textgen push --model_path out/zh --repo_id YOUR_NAME/zh
========================================================================
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_RULE = "=" * 72


def format_summary(rows: Sequence[tuple[str, str]], next_commands: Sequence[str] = ()) -> str:
    """The summary block: one `label : value` row each, then the next commands, between two rules."""
    labels = [label for label, _ in rows] + (["next"] if next_commands else [])
    width = max(map(len, labels), default=0)
    lines = ["", _RULE, *(f"{label:<{width}} : {value}" for label, value in rows)]
    for index, command in enumerate(next_commands):
        lines.append(f"{'next' if index == 0 else '':<{width}} {':' if index == 0 else ' '} {command}")
    lines.append(_RULE)
    return "\n".join(lines)


def command(*parts: str | os.PathLike) -> str:
    """A shell command line with each part quoted as needed (paths with spaces, prompts with newlines)."""
    return shlex.join(str(part) for part in parts)


def recorded_prompt(model_dir: str | os.PathLike) -> str | None:
    """The prompt taken from the training text (`training_data.json`), when the folder records one."""
    path = Path(model_dir) / "training_data.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("prompt")
    except (OSError, ValueError):
        return None


def _figure(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


# (metric key in the Trainer's results, how the summary names it), in the order shown.
_HEADLINE_METRICS = (
    ("eval_loss", "loss"),
    ("perplexity", "perplexity"),
    ("eval_bits_per_byte", "bits per byte"),
    ("eval_accuracy", "accuracy"),
    ("eval_f1", "macro-F1"),
    ("eval_exact_match", "exact match"),
    ("eval_bleu", "BLEU"),
)
_LOAD_CLASS = {
    "classification": "AutoModelForSequenceClassification",
    "seq2seq": "AutoModelForSeq2SeqLM",
}


def training_summary(output_dir: str | os.PathLike, metrics: dict[str, Any], task: str) -> str:
    """The end of `hf-textgen pretrain` / `finetune`: the folder, its figures, how to load it, what to run next.

    Args:
        output_dir: The finished model folder.
        metrics: What the run returned (`train_loss`, `train_runtime`, `eval_loss`, `perplexity`, ...).
        task: `causal_lm`, `prompt_completion`, `classification` or `seq2seq`.
    """
    folder = Path(output_dir)
    adapter = (folder / "adapter_config.json").is_file()  # finetune --use_peft without --merge_adapter
    contents = ["LoRA adapter" if adapter else "weights", "tokenizer"]
    if (folder / "README.md").is_file():
        contents.append("model card README.md")
    contents += sorted(path.name for path in folder.glob("*.png"))
    rows = [("model folder", f"{folder}/  ({', '.join(contents)})")]
    state = {}
    if (folder / "trainer_state.json").is_file():
        state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    if "train_loss" in metrics:
        steps = state.get("global_step")
        runtime = metrics.get("train_runtime")
        done = f"{steps} steps" if steps else "done"
        if runtime is not None:
            done += f" in {runtime:.0f} s"
        rows.append(("training", f"{done}; mean training loss {_figure(metrics['train_loss'])}"))
    figures = [f"{name} {_figure(metrics[key])}" for key, name in _HEADLINE_METRICS if key in metrics]
    if figures:
        rows.append(("validation", ", ".join(figures)))
    auto_class = _LOAD_CLASS.get(task, "AutoModelForCausalLM")
    if adapter:
        # generate, evaluate, export and push read complete model folders; PEFT loads the adapter on its base.
        peft_class = auto_class.replace("AutoModel", "AutoPeftModel")
        labels = ", num_labels=<number of labels>" if task == "classification" else ""
        load = f"from peft import {peft_class}; {peft_class}.from_pretrained({str(folder)!r}{labels})"
        rows.append(("load it", f"import hf_textgen; {load}"))
        rows.append(("full model", "fine-tune with --merge_adapter too (for generate, evaluate, export and push)"))
        return format_summary(rows)
    rows.append(("load it", f"import hf_textgen; {auto_class}.from_pretrained({str(folder)!r})"))
    next_commands = []
    prompt = recorded_prompt(folder)
    if task == "classification":
        # No command classifies text; the pipeline is one line of Python.
        rows.append(("classify", f"pipeline('text-classification', model={str(folder)!r})({prompt or 'some text'!r})"))
    else:
        generate = ["hf-textgen", "generate", "--model_name_or_path", folder]
        next_commands.append(command(*generate, "--prompt", prompt) if prompt else command(*generate))
    repo_id = f"YOUR_NAME/{folder.resolve().name}"
    next_commands.append(command("hf-textgen", "push", "--model_path", folder, "--repo_id", repo_id))
    return format_summary(rows, next_commands)
