"""Scaling out: the shipped Accelerate configs parse, and two CPU processes (gloo DDP) end with identical weights."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "scripts" / "configs"


@pytest.mark.parametrize(
    ("name", "distributed_type"),
    [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed_zero2", "DEEPSPEED"), ("deepspeed_zero3", "DEEPSPEED")],
)
def test_accelerate_configs_parse(name, distributed_type):
    """Each file loads with Accelerate's own loader, and every plugin key is one `accelerate launch` knows."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))
    assert config.distributed_type.name == distributed_type
    assert config.mixed_precision == "bf16"
    launch_flags = {action.dest for action in launch_command_parser()._actions}
    plugin = config.fsdp_config if distributed_type == "FSDP" else config.deepspeed_config
    assert set(plugin) <= launch_flags, set(plugin) - launch_flags
    if distributed_type == "FSDP":
        from hf_textgen.models import TransformerForCausalLM

        assert plugin["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
        assert plugin["fsdp_reshard_after_forward"] is True  # full shard
        assert plugin["fsdp_transformer_layer_cls_to_wrap"] in TransformerForCausalLM._no_split_modules
    if distributed_type == "DEEPSPEED":
        assert plugin["zero_stage"] == int(name[-1])


@pytest.mark.slow
def test_two_processes_hold_identical_weights(tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    """`torchrun --nproc_per_node 2 scripts/pretrain.py`: real data parallelism, replicas bit-identical after."""
    output_dir = tmp_path / "ddp"
    steps, batch_size = 4, 4
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free local port: parallel test runs must not collide
        "--nproc_per_node",
        "2",
        str(REPO / "scripts" / "pretrain.py"),
        "--output_dir",
        str(output_dir),
        "--model_type",
        "rnn",
        "--config_overrides",
        "hidden_size=32,num_hidden_layers=1",
        "--tokenizer_name",
        tiny_tokenizer_path,
        "--train_file",
        f"{tiny_corpus_dir}/train.txt",
        "--validation_file",
        f"{tiny_corpus_dir}/validation.txt",
        "--block_size",
        "32",
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        str(batch_size),
        "--save_strategy",
        "no",
        "--disable_tqdm",
        "true",
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    hashes = dict(re.findall(r"rank (\d)/2 weights sha256 ([0-9a-f]{64})", result.stdout))
    assert set(hashes) == {"0", "1"}, result.stdout[-2000:]
    assert hashes["0"] == hashes["1"]
    # Data parallel, not two copies of one run: each step consumed 2 x batch_size blocks.
    results = json.loads((output_dir / "all_results.json").read_text())
    blocks_per_epoch = results["train_samples"]
    assert results["epoch"] == pytest.approx(steps * batch_size * 2 / blocks_per_epoch, rel=0.15)
