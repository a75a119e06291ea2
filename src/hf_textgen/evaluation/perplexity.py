"""Perplexity from a mean negative log-likelihood: the one definition every report uses.

The Trainer's `eval_loss`, `hf-textgen evaluate` (through the `perplexity` metric module) and the model card all
turn a loss into a perplexity here, so they cannot disagree on overflow or units.
"""

from __future__ import annotations

import math


def perplexity(loss: float) -> float:
    """`exp(loss)` for a mean NLL in nats per token (or per word), infinity where that overflows.

    An untrained model's loss can be large enough to overflow `exp`; that is a result (infinitely perplexed), not a
    crash.
    """
    try:
        return math.exp(loss)
    except OverflowError:
        return math.inf
