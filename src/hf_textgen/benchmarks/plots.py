"""PNG plots of a results dictionary, one per comparison that ran (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def _bars(ax, groups: list[str], series: dict[str, list[float]], ylabel: str) -> None:
    width = 0.8 / len(series)
    for index, (name, values) in enumerate(series.items()):
        positions = [group + (index - (len(series) - 1) / 2) * width for group in range(len(groups))]
        ax.bar(positions, values, width, label=name)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylabel(ylabel)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)


def _series(rows: list[dict], key: str, scale: float = 1.0) -> dict[str, list[float]]:
    names = list(rows[0]["contenders"])
    return {name: [row["contenders"][name][key] * scale for row in rows] for name in names}


def plot_training(training: dict, path: Path) -> None:
    rows = training["rows"]
    groups = [f"{row['shape']} {row['dtype']}" for row in rows]
    figure, (speed, mfu) = plt.subplots(1, 2, figsize=(12, 4.5))
    _bars(speed, groups, _series(rows, "tokens_per_second"), "training tokens/s")
    speed.set_title("Training throughput (forward + backward + AdamW)")
    _bars(mfu, groups, _series(rows, "mfu", 100), "MFU (% of measured GEMM peak)")
    mfu.set_title("Model FLOPs utilisation")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_generation(generation: dict, path: Path) -> None:
    rows = generation["rows"]
    groups = [f"{row['shape']} batch {row['batch_size']}" for row in rows]
    figure, ax = plt.subplots(figsize=(7, 4.5))
    _bars(ax, groups, _series(rows, "tokens_per_second"), "generated tokens/s")
    ax.set_title(f"Greedy generation, {rows[0]['prompt_len']}-token prompt, {rows[0]['new_tokens']} new tokens")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_context(context: dict, path: Path) -> None:
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for name, values in context["contenders"].items():
        milliseconds = [seconds * 1e3 for seconds in values["per_token_seconds"]]
        ax.plot(context["context_lengths"], milliseconds, "o-", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("ms per generated token")
    ax.set_ylim(bottom=0)
    ax.set_title("Cost of one generated token vs context, batch 1")
    ax.legend()
    ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_quality(quality: dict, path: Path) -> None:
    figure, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in quality["curves"].items():
        ax.plot([point["seconds"] for point in curve], [point["val_loss"] for point in curve], "o-", label=name)
    reference = quality["nanogpt_reference"]
    label = f"nanoGPT published ({reference['steps']} steps)"
    ax.axhline(reference["val_loss"], color="grey", linestyle="--", label=label)
    ax.set_xlabel("training wall-clock seconds (own steps only)")
    ax.set_ylabel("validation loss (nats/char)")
    ax.set_title("Validation loss vs time, nanoGPT CPU setting, char-level")
    ax.legend()
    ax.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


TRANSFER_AXES = {
    "language_modeling": ("task text (characters)", "held-out bits per byte", "bits_per_byte"),
    "classification": ("labelled examples per class", "held-out accuracy (%)", "accuracy"),
    "prompt_completion": ("prompt -> completion pairs", "held-out completion loss (nats/char)", "loss"),
}
TRANSFER_TITLES = {
    "language_modeling": "Language modelling on an unseen play",
    "classification": "Spelled or scrambled (inner letters)?",
    "prompt_completion": "Speaker name -> first line",
}


def plot_transfer(transfer: dict, path: Path) -> None:
    """One panel per task: each family's pretrained and scratch start against the amount of task data."""
    tasks = list(transfer["amounts"])
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4.5), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        xlabel, ylabel, metric = TRANSFER_AXES[task]
        scale = 100 if metric == "accuracy" else 1
        for family, by_task in transfer["results"].items():
            by_amount = by_task[task]
            amounts = [int(amount) for amount in by_amount]
            for start, style in (("pretrained", "o-"), ("scratch", "s--")):
                means = [by_amount[str(a)][start][metric]["mean"] * scale for a in amounts]
                stds = [by_amount[str(a)][start][metric]["std"] * scale for a in amounts]
                ax.errorbar(amounts, means, yerr=stds, fmt=style, capsize=3, label=f"{family}, {start}")
        if metric == "accuracy":
            ax.axhline(50, color="grey", linestyle=":", label="chance")
        ax.set_xscale("log", base=2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(TRANSFER_TITLES[task])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    figure.suptitle(
        f"Fine-tuned from a pretrained LM vs from scratch, mean and std over {len(transfer['seeds'])} seeds"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


PLOTTERS = {
    "training": plot_training,
    "generation": plot_generation,
    "context": plot_context,
    "quality": plot_quality,
    "transfer": plot_transfer,
}


def write_plots(results: dict, folder: Path) -> list[str]:
    """Write `<comparison>.png` into `folder` for every comparison in `results`; return the file names."""
    written = []
    for name, plot in PLOTTERS.items():
        if name in results["comparisons"]:
            plot(results["comparisons"][name], folder / f"{name}.png")
            written.append(f"{name}.png")
    return written
