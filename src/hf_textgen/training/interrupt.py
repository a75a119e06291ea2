"""Stopping a training run cleanly on Ctrl-C (SIGINT) or SIGTERM, at a step boundary, with a checkpoint to resume.

While `trainer.train()` runs inside `stop_on_signal()`, the first SIGINT or SIGTERM only raises a flag; the
`StopOnSignal` callback sees it at the end of the current optimizer step and asks the Trainer to save a
checkpoint there and stop (`control.should_save`, `control.should_training_stop`, as `EarlyStoppingCallback`
stops a run). A second signal stops at once (`KeyboardInterrupt`), for a step that takes too long.

Under data parallelism every rank must stop after the same step, or the others wait forever in their next
all-reduce: the flag is therefore all-reduced (max) across ranks at every step end, one int per step.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator

import torch
from transformers import TrainerCallback

from hf_textgen.errors import EXIT_STATUS, Terminated, TrainingInterrupted  # noqa: F401  (raised and re-exported here)

logger = logging.getLogger(__name__)


class StopOnSignal(TrainerCallback):
    """Save a checkpoint and stop at the end of the step during which a stop was requested (see module docstring)."""

    def __init__(self) -> None:
        self.signal_name: str | None = None

    def request_stop(self, signal_name: str) -> None:
        self.signal_name = signal_name

    def _stop_requested(self) -> bool:
        requested = self.signal_name is not None
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            flag = torch.tensor([int(requested)])
            if torch.distributed.get_backend() == "nccl":
                flag = flag.cuda()
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            if flag.item() and not requested:
                self.signal_name = "a signal to another process"
            requested = bool(flag.item())
        return requested

    def on_step_end(self, args, state, control, **kwargs):
        if self._stop_requested() and state.global_step < state.max_steps:
            control.should_save = True
            control.should_training_stop = True
        return control


@contextlib.contextmanager
def stop_on_signal(callback: StopOnSignal) -> Iterator[StopOnSignal]:
    """Route SIGINT and SIGTERM to `callback` while the block runs (main thread only); restore the handlers after."""
    if threading.current_thread() is not threading.main_thread():
        yield callback
        return
    names = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}

    def handle(signum, frame):
        if callback.signal_name is not None:  # second signal: stop now
            raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt
        callback.request_stop(names[signum])
        print(
            f"\n{names[signum]} received: saving a checkpoint at the end of this step, then stopping "
            "(send it again to stop at once, without saving)",
            file=sys.stderr,
            flush=True,
        )

    previous = {signum: signal.signal(signum, handle) for signum in names}
    try:
        yield callback
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
