"""One rank of the two-process FSDP2 check, launched by `test_fsdp.py` as `torchrun --nproc_per_node 2 ...`.

Shards a tiny `TransformerForCausalLM` with torch's `fully_shard` (FSDP2) the way Accelerate's FSDP2 plugin does
with the shipped `scripts/configs/fsdp.yaml`: each `fsdp_transformer_layer_cls_to_wrap` module is one FSDP unit,
then the root, with the config's `fsdp_reshard_after_forward`. Runs on the CPU over gloo in float32 (the config's
bf16 mixed precision is the GPU setting), and writes one JSON report (rank 0) with:

- the parameter elements each rank holds (the local shards of the DTensor parameters) and the model's total;
- the loss at every step, against an unsharded copy trained on the same global batch in one process (rank 0);
- a sharded checkpoint (`torch.distributed.checkpoint`, one file per rank: the config's SHARDED_STATE_DICT) taken
  mid-run, loaded into a freshly initialised sharded model and optimizer, and trained to the end: the difference
  between its final weights and the uninterrupted run's.

Usage: torchrun --nproc_per_node 2 fsdp_worker.py FSDP_YAML WORK_DIR
"""

import copy
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from accelerate.commands.config.config_args import load_config_from_file
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor

from hf_textgen import TransformerConfig, TransformerForCausalLM

STEPS, CHECKPOINT_STEP = 6, 3
GLOBAL_BATCH, SEQ_LEN = 4, 16


def build_model(seed: int) -> TransformerForCausalLM:
    torch.manual_seed(seed)
    config = TransformerConfig(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    return TransformerForCausalLM(config)


def shard(model: torch.nn.Module, fsdp_config: dict) -> torch.nn.Module:
    """`fully_shard` each wrap-class module, then the root (Accelerate's FSDP2 order)."""
    wrap_classes = set(fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","))
    reshard = fsdp_config["fsdp_reshard_after_forward"]
    units = [module for module in model.modules() if type(module).__name__ in wrap_classes]
    if not units:
        raise SystemExit(f"no module of {wrap_classes} in {type(model).__name__}")
    for module in units:
        fully_shard(module, reshard_after_forward=reshard)
    fully_shard(model, reshard_after_forward=reshard)
    return model


def global_batch(step: int) -> torch.LongTensor:
    generator = torch.Generator().manual_seed(1000 + step)
    return torch.randint(3, 128, (GLOBAL_BATCH, SEQ_LEN), generator=generator)  # (B, T)


def train_steps(model, optimizer, steps: range, rows: slice) -> list[float]:
    """Steps on this rank's rows of each global batch; returns the global-batch loss (mean over ranks)."""
    losses = []
    for step in steps:
        input_ids = global_batch(step)[rows]
        loss = model(input_ids=input_ids, labels=input_ids).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        # Equal token counts per rank, so the mean of the two halves' losses is the global batch's loss.
        reported = loss.detach().clone()
        if dist.is_initialized() and rows != slice(None):
            dist.all_reduce(reported, op=dist.ReduceOp.AVG)
        losses.append(reported.item())
    return losses


def full_weights(model) -> dict[str, torch.Tensor]:
    """The whole (unsharded) state dict on every rank."""
    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True))


def make_optimizer(model):
    return torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)


def main() -> None:
    fsdp_yaml, work_dir = sys.argv[1], Path(sys.argv[2])
    dist.init_process_group("gloo")
    rank, world_size = dist.get_rank(), dist.get_world_size()
    torch.set_num_threads(1)
    fsdp_config = load_config_from_file(fsdp_yaml).fsdp_config
    assert fsdp_config["fsdp_state_dict_type"] == "SHARDED_STATE_DICT"
    per_rank = GLOBAL_BATCH // world_size
    rows = slice(rank * per_rank, (rank + 1) * per_rank)

    reference = copy.deepcopy(build_model(seed=0)) if rank == 0 else None
    model = shard(build_model(seed=0), fsdp_config)
    dtensor_params = [p for p in model.parameters() if isinstance(p, DTensor)]
    local_numel = sum(p.to_local().numel() for p in dtensor_params)
    total_numel = sum(p.numel() for p in model.parameters())  # DTensor.numel() is the global size
    all_local = [None] * world_size
    dist.all_gather_object(all_local, local_numel)

    # Uninterrupted run, with a sharded checkpoint after CHECKPOINT_STEP steps.
    optimizer = make_optimizer(model)
    losses = train_steps(model, optimizer, range(CHECKPOINT_STEP), rows)
    model_state, optimizer_state = get_state_dict(model, optimizer)
    checkpoint = work_dir / "checkpoint"
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(checkpoint))
    losses += train_steps(model, optimizer, range(CHECKPOINT_STEP, STEPS), rows)
    uninterrupted = full_weights(model)

    # Resume: a differently initialised sharded model and a fresh optimizer, loaded from the checkpoint.
    resumed_model = shard(build_model(seed=123), fsdp_config)
    resumed_optimizer = make_optimizer(resumed_model)
    model_state, optimizer_state = get_state_dict(resumed_model, resumed_optimizer)
    state = {"model": model_state, "optimizer": optimizer_state}
    dcp.load(state, checkpoint_id=str(checkpoint))
    set_state_dict(
        resumed_model, resumed_optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"]
    )
    resumed_losses = train_steps(resumed_model, resumed_optimizer, range(CHECKPOINT_STEP, STEPS), rows)
    resumed = full_weights(resumed_model)

    if rank == 0:
        reference_losses = train_steps(reference, make_optimizer(reference), range(STEPS), slice(None))
        reference_weights = reference.state_dict()
        report = {
            "world_size": world_size,
            "dtensor_parameters": len(dtensor_params),
            "parameters": len(list(model.parameters())),
            "local_numel_per_rank": all_local,
            "total_numel": total_numel,
            "losses": losses,
            "reference_losses": reference_losses,
            "resumed_losses": resumed_losses,
            "max_abs_diff_resumed_vs_uninterrupted": max(
                (resumed[key] - uninterrupted[key]).abs().max().item() for key in uninterrupted
            ),
            "max_abs_diff_fsdp_vs_reference_weights": max(
                (uninterrupted[key] - reference_weights[key]).abs().max().item() for key in uninterrupted
            ),
            "checkpoint_files": sorted(path.name for path in checkpoint.iterdir()),
        }
        (work_dir / "report.json").write_text(json.dumps(report, indent=1))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
