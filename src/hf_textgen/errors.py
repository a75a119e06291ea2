"""User-facing errors and the atomic output folder every command writes through."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


class UserError(Exception):
    """A mistake in the user's input: the CLI prints its message as one line and exits non-zero, no traceback.

    The message should name the problem and what to do about it.
    """


class CommandInterrupted(Exception):
    """A command stopped by a signal: the message says what was kept and what to run next.

    Args:
        message: One line, e.g. "demo stopped by SIGTERM; nothing was written to demo_output/; run it again".
        exit_status: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, message: str, exit_status: int = 130):
        super().__init__(message)
        self.exit_status = exit_status


# Conventional exit statuses: 128 + the signal number.
EXIT_STATUS = {"SIGINT": 130, "SIGTERM": 143}


class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception, so `with` blocks (temporary folders) clean up as they do for Ctrl-C."""


@dataclass
class TrainingInterrupted(Exception):
    """Training stopped on a signal; `checkpoint` (None if none was complete) is where to resume from.

    Defined here, beside the other exceptions the CLI turns into messages, so the CLI needs no torch to catch it
    (`hf_textgen.training.interrupt` raises it).
    """

    signal_name: str
    global_step: int
    max_steps: int
    checkpoint: str | None

    def __str__(self) -> str:
        where = f"the last complete checkpoint is {self.checkpoint}" if self.checkpoint else "no checkpoint was saved"
        return f"training stopped by {self.signal_name} after step {self.global_step} of {self.max_steps}; {where}"


@contextlib.contextmanager
def atomic_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside `path`, renamed to `path` only when the block finishes without error.

    A command that fails half-way therefore never leaves a half-written output folder behind.

    Args:
        path: The final output folder.
        overwrite: Replace an existing non-empty folder. Without it, a non-empty folder is a `UserError`.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"output path {path} exists and is not a folder; choose another --output_dir")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise UserError(
            f"output folder {path} already holds files; choose another --output_dir or pass --overwrite_output_dir"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def first_line(error: BaseException) -> str:
    """An exception's first message line for a one-line `error:`, or its type name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
