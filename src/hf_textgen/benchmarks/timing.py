"""Timing primitives shared by every comparison: alternating contenders, the peak matmul rate, the machine.

Absolute times on a shared machine are noise; a ratio measured in one run, with the contenders alternating
(A B A B ...) so that both see the same load, is not. Every comparison therefore times its contenders through
`alternate` and reports medians.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so a wall-clock reading covers the work (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class Alternation:
    """The samples of an alternated measurement.

    Attributes:
        order: Contender names in the order their timed runs happened (warm-up excluded), e.g. `A B A B`.
        seconds: Per contender, the wall-clock seconds of each timed run, in order.
        extras: Per contender, whatever each timed run returned (a loss, a token count), in order.
    """

    order: list[str] = field(default_factory=list)
    seconds: dict[str, list[float]] = field(default_factory=dict)
    extras: dict[str, list[object]] = field(default_factory=dict)

    def median(self, name: str) -> float:
        """The median seconds of `name`'s timed runs."""
        return statistics.median(self.seconds[name])

    def speedup(self, name: str, baseline: str) -> float:
        """How many times faster `name` is than `baseline`: the ratio of their median times (baseline / name)."""
        return self.median(baseline) / self.median(name)


def alternate(
    contenders: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    device: torch.device | None = None,
) -> Alternation:
    """Time each contender `repeats` times, taking turns (A B A B ...) after `warmup` untimed rounds.

    Args:
        contenders: Name -> a callable doing one unit of work (one training step, one `generate` call).
            Its return value is kept in `Alternation.extras`.
        repeats: Timed runs per contender.
        warmup: Untimed rounds first (allocator, autotuning, lazy initialisation, `torch.compile`).
        device: Synchronised around every timed run when it is a GPU.

    Returns:
        The samples, in the order they were taken.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    device = device or torch.device("cpu")
    for _ in range(warmup):
        for work in contenders.values():
            work()
    result = Alternation(seconds={name: [] for name in contenders}, extras={name: [] for name in contenders})
    for _ in range(repeats):
        for name, work in contenders.items():
            synchronize(device)
            start = time.perf_counter()
            extra = work()
            synchronize(device)
            result.seconds[name].append(time.perf_counter() - start)
            result.extras[name].append(extra)
            result.order.append(name)
    return result


def cpu_model_name() -> str:
    """The CPU's marketing name from /proc/cpuinfo (falls back to `platform.processor()`)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def available_cpus() -> int:
    """CPUs this process may run on (respects affinity masks and containers better than `os.cpu_count`)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages: how busy the machine was around the run."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return None
