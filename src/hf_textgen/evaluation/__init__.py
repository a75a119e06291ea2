"""Evaluation: metrics shipped as local `evaluate` modules (the Hub's metric scripts cannot be fetched offline)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import evaluate

METRICS_DIR = Path(__file__).parent / "metrics"


def load_metric(name: str, **kwargs) -> evaluate.EvaluationModule:
    """Load one of the package's metric modules (`metrics/<name>/<name>.py`) by path with `evaluate.load`."""
    import evaluate  # here, not at the top: `hf_textgen.evaluation.perplexity` alone should not import it

    script = METRICS_DIR / name / f"{name}.py"
    if not script.is_file():
        available = sorted(p.name for p in METRICS_DIR.iterdir() if (p / f"{p.name}.py").is_file())
        raise ValueError(f"unknown metric {name!r}; the package ships: {', '.join(available) or 'none'}")
    return evaluate.load(str(script), **kwargs)
