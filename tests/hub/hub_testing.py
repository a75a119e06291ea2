"""Helpers for the Hub tests: a Hub-compatible server on 127.0.0.1 and ways to run clients against it.

`huggingface_hub` reads `HF_ENDPOINT` when it is imported, and this test process imported it long ago (offline),
so every client that talks to the server runs in a subprocess with its own environment.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hub_server import HubServer

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "hf_textgenTestTokenNeverUpload42"  # alice's token on the test server
OTHER_TOKEN = "hf_textgenOtherUserToken77"  # bob's

# A fresh interpreter that sees the installed libraries but not hf_textgen: `-I -S` skips site processing (so the
# editable install's .pth is never read) and the bootstrap puts back only the site-packages folder itself.
_ISOLATED_BOOTSTRAP = """
import sys
for path in {paths!r}:
    if path not in sys.path:
        sys.path.append(path)
import importlib.util
assert importlib.util.find_spec("hf_textgen") is None, "hf_textgen must not be importable here"
"""

# Each call goes through the console script's `main`, with its own captured stdout and stderr.
_CLI_MANY = """
import contextlib, io, json
from hf_textgen.cli import main
results = []
for call in {calls!r}:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(call)
    results.append((status, out.getvalue(), err.getvalue()))
print("RESULTS " + json.dumps(results))
"""


@dataclass
class Hub:
    """The running server plus helpers to run the CLI and isolated clients against it."""

    server: HubServer
    home: Path
    _homes: itertools.count = field(default_factory=itertools.count)

    def env(self, token: str | None = TOKEN, **extra: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
        home = self.home / f"home-{next(self._homes)}"  # a fresh cache per process: nothing is pre-fetched
        env.update(
            HF_ENDPOINT=self.server.endpoint,
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            HF_HOME=str(home),
            TOKENIZERS_PARALLELISM="false",
            PYTHONUNBUFFERED="1",
        )
        if token is not None:
            env["HF_TOKEN"] = token
        env.update(extra)
        return env

    def push(self, *args: str, token: str | None = TOKEN, **extra_env: str) -> subprocess.CompletedProcess:
        """`hf-textgen push ARGS` in a subprocess (through scripts/push.py, as `accelerate launch` would)."""
        command = [sys.executable, str(REPO_ROOT / "scripts" / "push.py"), *args]
        return subprocess.run(
            command, env=self.env(token, **extra_env), capture_output=True, text=True, timeout=300, cwd=self.home
        )

    def cli_many(self, *calls: list[str], token: str | None = TOKEN) -> list[subprocess.CompletedProcess]:
        """Run several `hf-textgen ARGS` in ONE subprocess (one interpreter start-up instead of one per call)."""
        script = _CLI_MANY.format(calls=[list(call) for call in calls])
        process = subprocess.run(
            [sys.executable, "-c", script],
            env=self.env(token),
            capture_output=True,
            text=True,
            timeout=600,
            cwd=self.home,
        )
        marker = next((line for line in process.stdout.splitlines() if line.startswith("RESULTS ")), None)
        assert marker is not None, process.stdout[-2000:] + process.stderr[-3000:]
        return [subprocess.CompletedProcess(call, *result) for call, result in zip(calls, json.loads(marker[8:]))]

    def run_python(self, code: str, token: str | None = TOKEN, timeout: int = 300) -> subprocess.CompletedProcess:
        """Run `code` in a subprocess of this virtual environment (hf_textgen importable) against the server."""
        return subprocess.run(
            [sys.executable, "-c", code], env=self.env(token), capture_output=True, text=True, timeout=timeout
        )

    def run_isolated(self, code: str, token: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
        """Run `code` in an interpreter that cannot import hf_textgen, from a folder outside the repository."""
        paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        script = _ISOLATED_BOOTSTRAP.format(paths=paths) + code
        return subprocess.run(
            [sys.executable, "-I", "-S", "-c", script],
            env=self.env(token),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.home,
        )


@pytest.fixture(scope="session")
def hub(tmp_path_factory) -> Hub:
    """A Hub-compatible server on 127.0.0.1 (alice and bob have tokens), for the whole test session."""
    server = HubServer(tmp_path_factory.mktemp("hub_storage"), {TOKEN: "alice", OTHER_TOKEN: "bob"}).start()
    yield Hub(server, tmp_path_factory.mktemp("hub_clients"))
    server.stop()
