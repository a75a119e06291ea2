"""Run the comparisons, check them against issue 9's targets, write `results.json` and the plots."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import platform
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import transformers

from hf_textgen.benchmarks.contenders import SHAPES, Shape
from hf_textgen.benchmarks.timing import available_cpus, cpu_model_name, load_average
from hf_textgen.benchmarks.transfer import HEADLINE
from hf_textgen.cpu_features import detect_cpu_features, warn_if_half_precision_is_emulated

# Comparison names accepted by `--only`; "mfu" is computed from the training comparison's runs.
# "transfer" is what pretraining buys; "finetune_recipe" the ablation that chose its fine-tuning recipe.
COMPARISONS = ("training", "mfu", "generation", "context", "quality", "transfer", "finetune_recipe")


@dataclass
class BenchSettings:
    """Every size and count of a benchmark run. `full()` is the README run, `quick()` the CI-sized one.

    Attributes:
        only: The comparisons to run (names from `COMPARISONS`).
        device: `"cpu"` or `"cuda"`.
        num_threads: CPU threads for PyTorch; `None` uses every CPU this process may run on.
        torch_compile: Also time the training step under `torch.compile` (on and off, alternated).
        seed: Seeds weights and data.
        shapes: Training shapes by name.
        dtypes: Training dtypes (`"fp32"`, `"bf16"` autocast).
        train_repeats / train_warmup: Timed / untimed training steps per contender.
        gemm_size: Side of the square GEMM measuring the peak matmul rate.
        generation_shapes: Shapes whose generation speed is compared.
        generation_batch_sizes / prompt_len / new_tokens / generation_repeats: Generation workload.
        context_shape / context_lengths / context_new_tokens / context_repeats: Cost-growth workload.
        quality_*: nanoGPT-recipe run (steps, evaluation, model size).
        transfer_*: What pretraining buys (`benchmarks.transfer`): pretraining steps, model size, task amounts,
            fine-tuning steps per task, seeds, held-out size; `recipe_*`: the fine-tuning recipe ablation.
    """

    only: tuple[str, ...] = COMPARISONS
    device: str = "cpu"
    num_threads: int | None = None
    torch_compile: bool = False
    seed: int = 0
    shapes: dict[str, Shape] = field(default_factory=lambda: {name: SHAPES[name] for name in ("small", "medium")})
    dtypes: tuple[str, ...] = ("fp32", "bf16")
    train_repeats: int = 4
    train_warmup: int = 1
    gemm_size: int = 3072
    generation_shapes: dict[str, Shape] = field(default_factory=lambda: {"small": SHAPES["small"]})
    generation_batch_sizes: tuple[int, ...] = (1, 8)
    prompt_len: int = 64
    new_tokens: int = 256
    generation_repeats: int = 3
    generation_warmup: int = 1
    context_shape: Shape = SHAPES["small"]
    context_lengths: tuple[int, ...] = (128, 256, 512, 1024, 2048, 4096)
    context_new_tokens: int = 32
    context_repeats: int = 3
    quality_steps: int = 2000
    quality_eval_interval: int = 250
    quality_eval_iters: int = 20
    quality_hidden: int = 128
    quality_layers: int = 4
    quality_heads: int = 4
    quality_context: int = 64
    quality_batch_size: int = 12
    transfer_pretrain_steps: int = 1000
    transfer_hidden: int = 128
    transfer_layers: int = 4
    transfer_heads: int = 4
    transfer_lm_chars: tuple[int, ...] = (1000, 4000, 16000)
    transfer_labels_per_class: tuple[int, ...] = (16, 64, 256)
    transfer_completion_pairs: tuple[int, ...] = (16, 64, 256)
    transfer_finetune_steps: dict[str, int] = field(
        default_factory=lambda: {"language_modeling": 40, "classification": 50, "prompt_completion": 30}
    )
    transfer_batch_size: int = 8
    transfer_seeds: tuple[int, ...] = (0, 1, 2)
    transfer_eval_size: int = 200
    recipe_seeds: tuple[int, ...] = (0, 1)

    @classmethod
    def full(cls, **overrides) -> BenchSettings:
        """The README run: every comparison at the sizes of issue 9."""
        return cls(**overrides)

    @classmethod
    def quick(cls, **overrides) -> BenchSettings:
        """Every part shrunk (fewer repeats and steps, shorter contexts) to finish in minutes on 2 cores."""
        settings = {
            "train_repeats": 2,
            "train_warmup": 1,
            "gemm_size": 2048,
            "new_tokens": 64,
            "generation_repeats": 2,
            "context_lengths": (128, 512, 1024),
            "context_new_tokens": 16,
            "context_repeats": 2,
            "quality_steps": 200,
            "quality_eval_interval": 50,
            "quality_eval_iters": 5,
            "transfer_pretrain_steps": 120,
            "transfer_hidden": 64,
            "transfer_layers": 2,
            "transfer_lm_chars": (1000,),
            "transfer_labels_per_class": (16,),
            "transfer_completion_pairs": (16,),
            "transfer_finetune_steps": {"language_modeling": 20, "classification": 20, "prompt_completion": 20},
            "transfer_seeds": (0, 1),
            "transfer_eval_size": 48,
            "recipe_seeds": (0,),
        }
        return cls(**{**settings, **overrides})

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["context_shape"] = self.context_shape.to_dict()
        return data


def _mean_std(summary: dict) -> str:
    return f"{summary['mean']:.3f} ± {summary['std']:.3f}"


def _wants(settings: BenchSettings, *names: str) -> bool:
    return any(name in settings.only for name in names)


def machine_info(settings: BenchSettings, device: torch.device) -> dict:
    """Where and how the numbers were measured."""
    info = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "device": str(device),
        "cpu": cpu_model_name(),
        "cpu_matmul_features": detect_cpu_features().describe(),
        "cpus_available": available_cpus(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "load_average_before": load_average(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def evaluate_targets(comparisons: dict, settings: BenchSettings) -> list[dict]:
    """Issue 9's targets, each with the measured value and whether it is met."""
    targets = []

    def add(name: str, measured: float | None, threshold: float, higher_is_better: bool, unit: str = "x") -> None:
        met = None if measured is None else (measured >= threshold if higher_is_better else measured <= threshold)
        sign = ">=" if higher_is_better else "<="
        targets.append({"target": name, "measured": measured, "goal": f"{sign} {threshold:g}{unit}", "met": met})

    for row in comparisons.get("training", {}).get("rows", []):
        add(f"training {row['shape']} {row['dtype']}: ours/llama tokens/s", row["ratios"]["ours_vs_llama"], 1.25, True)
        if row["dtype"] == "bf16" and row["shape"] == "medium":
            add("MFU bf16 medium (ours)", row["contenders"]["ours"]["mfu"] * 100, 45, True, "%")
    for row in comparisons.get("generation", {}).get("rows", []):
        add(
            f"generation {row['shape']} batch {row['batch_size']}: ours/llama tokens/s",
            row["ratios"]["ours_vs_llama"],
            1.3,
            True,
        )
    context = comparisons.get("context")
    if context:
        lengths = context["context_lengths"]
        add(f"RNN time/token at {lengths[-1]} vs {lengths[0]}", context["growth"]["rnn"], 1.2, False)
    quality = comparisons.get("quality")
    if quality:
        reference = quality["nanogpt_reference"]
        # The published number is for 2,000 steps; a shorter (quick) run is reported but not judged.
        at_reference = settings.quality_steps == reference["steps"]
        measured = quality["final"]["transformer"]["val_loss"] if at_reference else None
        name = f"val loss after {reference['steps']} steps (ours, Transformer)"
        add(name, measured, reference["val_loss"], False, "")
    for check in comparisons.get("transfer", {}).get("targets", []):
        # Gain of the pretrained start over scratch at the smallest task size, in units of the seed spread.
        ratio = check["gain"] / check["spread"] if check["spread"] > 0 else math.copysign(math.inf, check["gain"])
        name = f"pretrained - scratch, {check['family']} {check['task']} at {check['amount']}: gain / spread"
        add(name, ratio, 3, True)
    return targets


def format_table(results: dict) -> str:
    """The printed summary: one line per target, then the comparisons without a target."""
    lines = [f"{'target':<58} {'measured':>10} {'goal':>10}  met"]
    for target in results["targets"]:
        measured = "n/a" if target["measured"] is None else f"{target['measured']:.2f}"
        met = {True: "yes", False: "NO", None: "-"}[target["met"]]
        lines.append(f"{target['target']:<58} {measured:>10} {target['goal']:>10}  {met}")
    comparisons = results["comparisons"]
    for row in comparisons.get("training", {}).get("rows", []):
        cells = ", ".join(
            f"{name} {values['tokens_per_second']:.0f} tok/s MFU {values['mfu']:.1%}"
            for name, values in row["contenders"].items()
        )
        lines.append(f"training {row['shape']} {row['dtype']}: {cells}")
    for row in comparisons.get("generation", {}).get("rows", []):
        cells = ", ".join(f"{n} {v['tokens_per_second']:.0f} tok/s" for n, v in row["contenders"].items())
        lines.append(f"generation {row['shape']} batch {row['batch_size']}: {cells}")
    context = comparisons.get("context")
    if context:
        for name, values in context["contenders"].items():
            cells = " ".join(f"{s * 1e3:.1f}" for s in values["per_token_seconds"])
            lines.append(f"context {name} ms/token at {context['context_lengths']}: {cells}")
    quality = comparisons.get("quality")
    if quality:
        cells = ", ".join(f"{n} {v['val_loss']:.3f} in {v['seconds']:.0f}s" for n, v in quality["final"].items())
        lines.append(f"quality: val loss after {quality['final']['transformer']['steps']} steps: {cells}")
    transfer = comparisons.get("transfer")
    if transfer:
        for family, by_task in transfer["results"].items():
            for task, by_amount in by_task.items():
                metric = HEADLINE[task]
                for amount, by_start in by_amount.items():
                    cells = ", ".join(f"{start} {_mean_std(values[metric])}" for start, values in by_start.items())
                    lines.append(f"transfer {family} {task} {amount}: {metric} {cells}")
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    """The targets and every measured row as Markdown tables (what the README's Performance section shows)."""
    machine = results["machine"]
    lines = [
        f"Measured {machine['date_utc']} UTC on {machine['cpu']} ({machine['cpus_available']} CPUs available, "
        f"{machine['torch_threads']} PyTorch threads, {machine['cpu_matmul_features']}; load average "
        f"{machine['load_average_before']} before, {machine['load_average_after']} after), "
        f"torch {machine['torch']}, transformers {machine['transformers']}.",
        "",
        "| target | measured | goal | met |",
        "| --- | ---: | ---: | :---: |",
    ]
    for target in results["targets"]:
        measured = "n/a" if target["measured"] is None else f"{target['measured']:.2f}"
        met = {True: "yes", False: "**no**", None: "-"}[target["met"]]
        lines.append(f"| {target['target']} | {measured} | {target['goal']} | {met} |")
    comparisons = results["comparisons"]
    training = comparisons.get("training")
    if training:
        lines += ["", "| training | contender | tokens/s | MFU | vs Llama |", "| --- | --- | ---: | ---: | ---: |"]
        for row in training["rows"]:
            llama = row["contenders"]["llama"]["median_seconds"]
            for name, values in row["contenders"].items():
                lines.append(
                    f"| {row['shape']} {row['dtype']} | {name} | {values['tokens_per_second']:.0f} | "
                    f"{values['mfu']:.1%} | {llama / values['median_seconds']:.2f}x |"
                )
    generation = comparisons.get("generation")
    if generation:
        lines += ["", "| generation | ours tokens/s | Llama tokens/s | ratio |", "| --- | ---: | ---: | ---: |"]
        for row in generation["rows"]:
            ours, llama = row["contenders"]["ours"], row["contenders"]["llama"]
            lines.append(
                f"| {row['shape']}, batch {row['batch_size']} | {ours['tokens_per_second']:.1f} | "
                f"{llama['tokens_per_second']:.1f} | {row['ratios']['ours_vs_llama']:.2f}x |"
            )
    context = comparisons.get("context")
    if context:
        header = " | ".join(str(length) for length in context["context_lengths"])
        lines += ["", f"| ms per generated token at context | {header} | growth |"]
        lines.append("| --- |" + " ---: |" * (len(context["context_lengths"]) + 1))
        for name, values in context["contenders"].items():
            cells = " | ".join(f"{seconds * 1e3:.1f}" for seconds in values["per_token_seconds"])
            lines.append(f"| {name} | {cells} | {context['growth'][name]:.2f}x |")
    quality = comparisons.get("quality")
    if quality:
        lines += ["", "| nanoGPT setting | parameters | val loss | training seconds |", "| --- | ---: | ---: | ---: |"]
        for name, final in quality["final"].items():
            lines.append(
                f"| {name}, {final['steps']} steps | {quality['parameters'][name]:,} | {final['val_loss']:.3f} | "
                f"{final['seconds']:.0f} |"
            )
        reference = quality["nanogpt_reference"]
        lines.append(f"| nanoGPT (published), {reference['steps']} steps | | {reference['val_loss']} | |")
    transfer = comparisons.get("transfer")
    if transfer:
        lines += ["", "| family | task | amount | from the pretrained LM | from scratch | gain |"]
        lines.append("| --- | --- | ---: | ---: | ---: | ---: |")
        for family, by_task in transfer["results"].items():
            for task, by_amount in by_task.items():
                metric = HEADLINE[task]
                for amount, by_start in by_amount.items():
                    pretrained, scratch = by_start["pretrained"][metric], by_start["scratch"][metric]
                    cells = (
                        f"{_mean_std(pretrained)} | {_mean_std(scratch)} | {pretrained['mean'] - scratch['mean']:+.3f}"
                    )
                    lines.append(f"| {family} | {task} ({metric}) | {amount} | {cells} |")
    recipe = comparisons.get("finetune_recipe")
    if recipe:
        columns = [(family, task) for family, by_task in recipe["results"].items() for task in by_task]
        header = " | ".join(f"{family} {task} ({HEADLINE[task]})" for family, task in columns)
        lines += ["", f"| recipe | {header} |", "| --- |" + " ---: |" * len(columns)]
        for name in recipe["recipes"]:
            cells = " | ".join(
                _mean_std(recipe["results"][family][task][name][HEADLINE[task]]) for family, task in columns
            )
            lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def _run_transfer_comparisons(settings: BenchSettings, corpus, comparisons: dict, timed, log) -> None:
    """Pretrain each family once (into a temporary folder), then run "transfer" and/or "finetune_recipe" on it."""
    from hf_textgen.benchmarks import transfer
    from hf_textgen.data import bundled_corpus_files

    task_text = Path(bundled_corpus_files()["validation"]).read_text(encoding="utf-8")
    with tempfile.TemporaryDirectory() as folder:
        with timed("transfer_pretraining", "what pretraining buys: pretraining"):
            setup, pretraining = transfer.prepare(
                corpus,
                task_text,
                Path(folder),
                pretrain_steps=settings.transfer_pretrain_steps,
                hidden=settings.transfer_hidden,
                layers=settings.transfer_layers,
                heads=settings.transfer_heads,
                context=settings.quality_context,
                pretrain_batch_size=settings.quality_batch_size,
                finetune_batch_size=settings.transfer_batch_size,
                eval_size=settings.transfer_eval_size,
                log=log,
            )
        if _wants(settings, "finetune_recipe"):
            with timed("finetune_recipe", "fine-tuning recipe ablation"):
                # The smallest text, and the middle number of labels (at the smallest, every recipe is near chance).
                labels = sorted(settings.transfer_labels_per_class)
                amounts = {
                    "language_modeling": min(settings.transfer_lm_chars),
                    "classification": labels[len(labels) // 2],
                }
                comparisons["finetune_recipe"] = {
                    "pretraining": pretraining,
                    **transfer.run_recipe_ablation(
                        setup, amounts, settings.transfer_finetune_steps, settings.recipe_seeds, log=log
                    ),
                }
        if _wants(settings, "transfer"):
            with timed("transfer", "what pretraining buys: fine-tuning, pretrained vs scratch"):
                amounts = {
                    "language_modeling": settings.transfer_lm_chars,
                    "classification": settings.transfer_labels_per_class,
                    "prompt_completion": settings.transfer_completion_pairs,
                }
                comparisons["transfer"] = {
                    "pretraining": pretraining,
                    **transfer.run_transfer(
                        setup, amounts, settings.transfer_finetune_steps, settings.transfer_seeds, log=log
                    ),
                }


def run_benchmarks(settings: BenchSettings, output_dir: Path, log: Callable[[str], None] = print) -> dict:
    """Run the selected comparisons; write `results.json`, `table.txt`, `table.md` and `<comparison>.png`.

    Args:
        settings: What to run and at which sizes.
        output_dir: An existing folder to write into.
        log: Progress lines.

    Returns:
        The results dictionary written to `results.json`.
    """
    from hf_textgen.benchmarks.generation import run_context_growth, run_generation
    from hf_textgen.benchmarks.plots import write_plots
    from hf_textgen.benchmarks.training import run_training

    device = torch.device(settings.device)
    if device.type == "cpu":
        torch.set_num_threads(settings.num_threads or available_cpus())
    results = {"machine": machine_info(settings, device), "settings": settings.to_dict(), "comparisons": {}}
    if device.type == "cpu":
        log(f"CPU: {results['machine']['cpu']}; matrix features: {results['machine']['cpu_matmul_features']}")
        if _wants(settings, "training", "mfu"):
            warn_if_half_precision_is_emulated("bf16" in settings.dtypes, bf16_flag="--dtypes bf16")
    comparisons = results["comparisons"]
    seconds = {}
    common = {"device": device, "seed": settings.seed, "log": log}

    @contextlib.contextmanager
    def timed(name: str, title: str) -> Iterator[None]:
        log(f"[{title}]")
        start = time.perf_counter()
        yield
        seconds[name] = time.perf_counter() - start

    if _wants(settings, "training", "mfu"):
        with timed("training", "training + MFU"):
            comparisons["training"] = run_training(
                settings.shapes,
                list(settings.dtypes),
                settings.train_repeats,
                settings.train_warmup,
                settings.gemm_size,
                settings.torch_compile,
                **common,
            )
    if _wants(settings, "generation"):
        with timed("generation", "generation"):
            comparisons["generation"] = run_generation(
                settings.generation_shapes,
                list(settings.generation_batch_sizes),
                settings.prompt_len,
                settings.new_tokens,
                settings.generation_repeats,
                settings.generation_warmup,
                **common,
            )
    if _wants(settings, "context"):
        with timed("context", "context growth"):
            comparisons["context"] = run_context_growth(
                settings.context_shape,
                list(settings.context_lengths),
                settings.context_new_tokens,
                settings.context_repeats,
                warmup=1,
                **common,
            )
    if _wants(settings, "quality", "transfer", "finetune_recipe"):
        if device.type != "cpu":
            raise ValueError("the quality and transfer comparisons run on the CPU only; use --only to skip them")
        from hf_textgen.benchmarks.quality import load_char_corpus

        corpus = load_char_corpus()
    if _wants(settings, "quality"):
        from hf_textgen.benchmarks.quality import run_quality

        with timed("quality", "quality per time"):
            comparisons["quality"] = run_quality(
                corpus,
                settings.quality_steps,
                settings.quality_eval_interval,
                settings.quality_eval_iters,
                hidden=settings.quality_hidden,
                layers=settings.quality_layers,
                heads=settings.quality_heads,
                context=settings.quality_context,
                batch_size=settings.quality_batch_size,
                seed=settings.seed,
                log=log,
            )
    if _wants(settings, "transfer", "finetune_recipe"):
        _run_transfer_comparisons(settings, corpus, comparisons, timed, log)

    results["machine"]["load_average_after"] = load_average()
    results["seconds"] = seconds
    results["targets"] = evaluate_targets(comparisons, settings)
    output_dir = Path(output_dir)
    results["plots"] = write_plots(results, output_dir)
    (output_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    table = format_table(results)
    (output_dir / "table.txt").write_text(table + "\n", encoding="utf-8")
    (output_dir / "table.md").write_text(format_markdown(results) + "\n", encoding="utf-8")
    log(table)
    return results
