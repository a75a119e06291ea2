"""FSDP that shards: two CPU processes (gloo) run torch's FSDP2 `fully_shard` with the shipped FSDP settings.

Accelerate 1.15 does not shard on CPUs (its FSDP plugin is only taken up for GPU-like devices; on a CPU the
Trainer runs DDP, see the README's "What runs where"), so this test drives FSDP2 directly with `torchrun`, as
`fsdp_worker.py` explains, on our Transformer with the wrap class, reshard and state-dict settings of
`scripts/configs/fsdp.yaml`.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_fsdp2_shards_matches_one_process_and_resumes_from_a_sharded_checkpoint(tmp_path):
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # a free local port: parallel test runs must not collide
        "--nproc_per_node",
        "2",
        str(Path(__file__).with_name("fsdp_worker.py")),
        str(REPO / "scripts" / "configs" / "fsdp.yaml"),
        str(tmp_path),
    ]
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())

    # Sharded: every parameter is a DTensor, and each rank holds about half of the elements (dim-0 shards).
    assert report["dtensor_parameters"] == report["parameters"] > 0
    local, total = report["local_numel_per_rank"], report["total_numel"]
    assert sum(local) == total
    assert all(abs(numel - total / 2) <= 0.05 * total for numel in local), (local, total)

    # The same training as one process on the whole global batch, step by step and in the final weights.
    for step, (sharded, single) in enumerate(zip(report["losses"], report["reference_losses"], strict=True)):
        assert abs(sharded - single) <= 1e-5, (step, sharded, single)
    assert report["max_abs_diff_fsdp_vs_reference_weights"] <= 1e-5, report

    # A sharded checkpoint (one file per rank) resumes to exactly the uninterrupted run.
    assert {"__0_0.distcp", "__1_0.distcp", ".metadata"} <= set(report["checkpoint_files"])
    assert report["resumed_losses"] == report["losses"][-len(report["resumed_losses"]) :]
    assert report["max_abs_diff_resumed_vs_uninterrupted"] == 0.0, report
