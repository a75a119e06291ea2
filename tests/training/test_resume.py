"""A pretraining run killed with SIGKILL and resumed ends with exactly the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]

# Runs `hf-textgen pretrain` with one extra callback that stops after the first checkpoint is completely written and
# waits to be killed, so the kill always lands between two checkpoints (a tiny model trains too fast to aim at).
_PAUSING_RUN = """
import sys, time
from transformers import TrainerCallback
from hf_textgen.data import DataArguments
from hf_textgen.training.arguments import ModelArguments, parse_arguments
from hf_textgen.training.pretrain import PretrainingArguments, run_pretrain

class WaitToBeKilled(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        print(f"SAVED {state.global_step}", flush=True)
        time.sleep(600)

arguments = parse_arguments((ModelArguments, DataArguments, PretrainingArguments), sys.argv[1:])
run_pretrain(*arguments, callbacks=[WaitToBeKilled()])
"""


def _argv(output_dir, corpus_dir, tokenizer_path):
    return [
        "--output_dir",
        str(output_dir),
        "--model_type",
        "rnn",  # dropout 0.2: the resumed run must also restore the RNG state exactly
        "--config_overrides",
        "hidden_size=32,num_hidden_layers=1",
        "--tokenizer_name",
        tokenizer_path,
        "--train_file",
        f"{corpus_dir}/train.txt",
        "--validation_file",
        f"{corpus_dir}/validation.txt",
        "--block_size",
        "32",
        "--max_steps",
        "10",
        "--per_device_train_batch_size",
        "4",
        "--save_steps",
        "4",
        "--logging_steps",
        "1",
        "--eval_strategy",
        "no",
        "--do_eval",
        "false",
        "--disable_tqdm",
        "true",
        "--seed",
        "7",
    ]


def _env():
    # Same threads in every run: float reductions must happen in the same order for bit-identical weights.
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def _pretrain(argv):
    command = [sys.executable, str(REPO / "scripts" / "pretrain.py"), *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_weights(tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    reference_dir, killed_dir = tmp_path / "uninterrupted", tmp_path / "killed"
    stdout = _pretrain(_argv(reference_dir, tiny_corpus_dir, tiny_tokenizer_path))
    assert stdout.count("{'loss'") == 10  # one log line per step

    process = subprocess.Popen(
        [sys.executable, "-c", _PAUSING_RUN, *_argv(killed_dir, tiny_corpus_dir, tiny_tokenizer_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(),
    )
    try:
        deadline = time.monotonic() + 240
        for line in process.stdout:
            if line.startswith("SAVED") or time.monotonic() > deadline:
                break
        assert line.strip() == "SAVED 4", "the run never reached its first checkpoint"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == -signal.SIGKILL
    assert (killed_dir / "checkpoint-4" / "trainer_state.json").is_file()
    assert not (killed_dir / "model.safetensors").exists()  # it really died before finishing

    # The same command again: the folder's last complete checkpoint is picked up without being named.
    stdout = _pretrain(_argv(killed_dir, tiny_corpus_dir, tiny_tokenizer_path))
    assert stdout.count("{'loss'") == 6  # steps 5-10 only: it resumed, it did not start again

    reference = load_file(reference_dir / "model.safetensors")
    resumed = load_file(killed_dir / "model.safetensors")
    assert reference.keys() == resumed.keys()
    for name, tensor in reference.items():
        assert (tensor == resumed[name]).all(), f"{name} differs after resume"
