"""Stopping a run with SIGINT / SIGTERM: a checkpoint at a step boundary, a resume line that works when pasted,
no temporary folder left behind, and resume errors that say what is wrong.

The runs are real `hf-textgen` processes: the signal is sent once the first training step has been logged.
"""

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hf_textgen import cli

TINY = "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64"
HF_TEXTGEN = Path(sys.executable).with_name("hf-textgen")


def _start(argv: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(HF_TEXTGEN), *argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
    )


def _signal_when(process: subprocess.Popen, marker: str, signum: int, stream: str = "stdout") -> tuple[str, str]:
    """Send `signum` once `marker` appears in the process's output; return (stdout, stderr) after it exits."""
    source = process.stdout if stream == "stdout" else process.stderr
    seen = []
    deadline = time.monotonic() + 600
    for line in source:
        seen.append(line)
        if marker in line:
            process.send_signal(signum)
            break
        assert time.monotonic() < deadline, "the run never reached the point to interrupt"
    out, err = process.communicate(timeout=600)
    if stream == "stdout":
        return "".join(seen) + out, err
    return out, "".join(seen) + err


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_at_a_step_and_the_printed_line_resumes(tmp_path, tiny_corpus_dir, tiny_tokenizer_path, signum):
    argv = ["pretrain", "--model_type", "transformer", "--config_overrides", TINY, "--block_size", "32"]
    argv += ["--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", f"{tiny_corpus_dir}/validation.txt"]
    argv += ["--tokenizer_name", tiny_tokenizer_path, "--output_dir", "out with space", "--max_steps", "300"]
    argv += ["--per_device_train_batch_size", "4", "--logging_steps", "1", "--eval_strategy", "no"]
    argv += ["--disable_tqdm", "true", "--report_to", "none"]
    process = _start(argv, tmp_path)
    _, err = _signal_when(process, "'loss'", signum)
    name = signal.Signals(signum).name
    assert process.returncode == 128 + signum, err[-3000:]
    assert "Traceback" not in err
    stopped = next(line for line in err.splitlines() if line.startswith("stopped: "))
    step = int(stopped.split("after step ")[1].split()[0])
    assert f"training stopped by {name} after step {step} of 300" in stopped
    checkpoint = tmp_path / "out with space" / f"checkpoint-{step}"
    assert f"the last complete checkpoint is out with space/checkpoint-{step}" in stopped
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == step
    assert (checkpoint / "model.safetensors").is_file()
    assert not (tmp_path / "out with space" / "model.safetensors").exists()  # not dressed up as finished
    assert not list(tmp_path.glob(".*tmp*"))

    # Paste the printed line into a shell, as a user would.
    resume_line = err.splitlines()[err.splitlines().index("resume with:") + 1].strip()
    assert resume_line.startswith("hf-textgen pretrain ")
    assert f"--resume_from_checkpoint 'out with space/checkpoint-{step}'" in resume_line
    resumed = subprocess.run(
        [str(HF_TEXTGEN), *shlex.split(resume_line)[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    state = json.loads((tmp_path / "out with space" / "trainer_state.json").read_text())
    assert state["global_step"] == 300
    assert state["log_history"][0]["step"] == 1  # the history goes on from the first run, not from zero
    assert "model folder : out with space/" in resumed.stdout


def test_demo_stopped_by_sigterm_leaves_nothing_behind(tmp_path):
    process = _start(["demo", "--quick", "--output_dir", "demo_out"], tmp_path)
    _, err = _signal_when(process, "[2/4]", signal.SIGTERM)
    assert process.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    assert "run `hf-textgen demo` again" in err or "interrupted by SIGTERM" in err
    assert list(tmp_path.iterdir()) == []  # no demo_out, no hidden .demo_out.tmp-* folder


def test_resume_errors_say_what_is_wrong(tmp_path, capsys):
    base = ["pretrain", "--output_dir", str(tmp_path / "out"), "--max_steps", "1"]
    assert cli.main([*base, "--resume_from_checkpoint", str(tmp_path / "out" / "checkpoint-9")]) == 2
    assert "checkpoint-9 does not exist; check the path" in capsys.readouterr().err
    partial = tmp_path / "out" / "checkpoint-5"
    partial.mkdir(parents=True)
    (partial / "model.safetensors").write_bytes(b"")
    assert cli.main([*base, "--resume_from_checkpoint", str(partial)]) == 2
    assert "incomplete checkpoint (missing: trainer_state.json;" in capsys.readouterr().err


def test_resume_command_keeps_the_arguments_and_replaces_an_old_checkpoint():
    argv = ["--output_dir", "out", "--resume_from_checkpoint", "out/checkpoint-1", "--prompt", "a b"]
    line = cli.resume_command(argv, "out/checkpoint-7", "hf-textgen pretrain")
    assert line == "hf-textgen pretrain --output_dir out --prompt 'a b' --resume_from_checkpoint out/checkpoint-7"
    line = cli.resume_command(["--resume-from-checkpoint=x", "--seed", "3"], "c-2", "hf-textgen finetune")
    assert line == "hf-textgen finetune --seed 3 --resume_from_checkpoint c-2"
    assert cli.resume_command(["run.yaml"], "c-2", "hf-textgen pretrain") == "hf-textgen pretrain run.yaml"
