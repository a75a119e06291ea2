"""Comparisons 1 and 2: training throughput (tokens/s) and model FLOPs utilisation, ours vs Llama.

One training step is what a plain PyTorch loop does: forward with labels, backward, `AdamW.step()`,
`zero_grad(set_to_none=True)`. No Trainer, no data loading, so the numbers measure the models.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hf_textgen.benchmarks.contenders import (
    SHAPES,
    Shape,
    build_pair,
    matmul_parameter_count,
    parameter_count,
    training_flops_per_token,
)
from hf_textgen.benchmarks.timing import alternate

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
GEMM = "peak_gemm"


def make_gemm(dtype: torch.dtype, device: torch.device, size: int) -> Callable[[], None]:
    """One `size x size` matrix product in `dtype`: `2 * size**3` FLOPs at the library's best matmul rate."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def gemm() -> None:
        torch.mm(a, b)

    return gemm


def make_training_step(
    model: torch.nn.Module, input_ids: torch.Tensor, dtype: str, device: torch.device
) -> Callable[[], float]:
    """One optimiser step on a fixed batch, in fp32 or under bf16 autocast (fp32 master weights); returns the loss."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = dtype == "bf16"

    def step() -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def run_training(
    shapes: dict[str, Shape],
    dtypes: list[str],
    repeats: int,
    warmup: int,
    gemm_size: int,
    torch_compile: bool,
    device: torch.device,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Measure training tokens/s of ours vs Llama at every shape and dtype, and the MFU of each.

    Args:
        shapes: Name -> shape to measure (see `SHAPES`).
        dtypes: Any of `"fp32"`, `"bf16"` (bf16 autocast).
        repeats: Timed steps per contender (alternated).
        warmup: Untimed steps per contender first.
        gemm_size: Side of the square GEMM that measures the peak matmul rate (alternated with the steps).
        torch_compile: Also measure both models under `torch.compile` (on and off in the same alternation).
        device: Where to run.
        seed: Seeds the weights and the batch.
        log: Progress lines.

    Returns:
        `{"rows": [...]}`; each row holds one shape and dtype with every contender's samples, median tokens/s
        and MFU, the peak GEMM rate measured in the same alternation, and the ratios of the medians.
    """
    rows = []
    for shape_name, shape in shapes.items():
        for dtype in dtypes:
            torch.manual_seed(seed)
            input_ids = torch.randint(0, shape.vocab_size, (shape.batch_size, shape.seq_len), device=device)
            models = {name: model.to(device).train() for name, model in build_pair(shape, shape.seq_len).items()}
            steps = {name: make_training_step(model, input_ids, dtype, device) for name, model in models.items()}
            if torch_compile:
                # The compiled module shares the eager one's parameters (one more optimizer on them): the work per
                # step is the same, and ours and Llama stay in lockstep because both get the same extra updates.
                for name, model in models.items():
                    compiled = torch.compile(model)
                    steps[f"{name}_compiled"] = make_training_step(compiled, input_ids, dtype, device)
            # The peak GEMM takes its turn in the same alternation, so it sees the same machine load as the steps.
            gemm = make_gemm(DTYPES[dtype], device, gemm_size)
            log(f"  training {shape_name} {dtype}: {' / '.join(steps)} / {gemm_size}^3 GEMM")
            timed = alternate({**steps, GEMM: gemm}, repeats=repeats, warmup=warmup, device=device)
            peak = 2 * gemm_size**3 / timed.median(GEMM)
            tokens_per_step = shape.batch_size * shape.seq_len
            contenders = {}
            for name in steps:
                model = models[name.removesuffix("_compiled")]
                flops_per_token = training_flops_per_token(model, shape)
                tokens_per_second = tokens_per_step / timed.median(name)
                contenders[name] = {
                    "seconds": timed.seconds[name],
                    "median_seconds": timed.median(name),
                    "tokens_per_second": tokens_per_second,
                    "losses": timed.extras[name],
                    "parameters": parameter_count(model),
                    "matmul_parameters": matmul_parameter_count(model),
                    "flops_per_token": flops_per_token,
                    "achieved_flops": flops_per_token * tokens_per_second,
                    "mfu": flops_per_token * tokens_per_second / peak,
                }
            ratios = {"ours_vs_llama": timed.speedup("ours", "llama")}
            # Same weights, same batch: the loss trajectories may differ only by rounding.
            loss_gap = max(abs(a - b) for a, b in zip(timed.extras["ours"], timed.extras["llama"]))
            if torch_compile:
                ratios["ours_compiled_vs_llama_compiled"] = timed.speedup("ours_compiled", "llama_compiled")
                ratios["ours_compiled_vs_ours"] = timed.speedup("ours_compiled", "ours")
                ratios["llama_compiled_vs_llama"] = timed.speedup("llama_compiled", "llama")
            rows.append(
                {
                    "shape": shape_name,
                    "dtype": dtype,
                    "config": shape.to_dict(),
                    "tokens_per_step": tokens_per_step,
                    "peak_flops": peak,
                    "gemm_seconds": timed.seconds[GEMM],
                    "order": timed.order,
                    "contenders": contenders,
                    "ratios": ratios,
                    "max_loss_difference": loss_gap,
                }
            )
            summary = ", ".join(f"{name} {value:.2f}x" for name, value in ratios.items())
            mfu = ", ".join(f"{name} {values['mfu']:.1%}" for name, values in contenders.items())
            log(f"    {summary}; GEMM peak {peak / 1e9:.0f} GFLOP/s; MFU {mfu}")
            del models, steps
    return {
        "method": (
            "plain PyTorch loop: forward with labels, backward, AdamW step, zero_grad; random tokens; "
            f"{warmup} warm-up step(s) then {repeats} timed steps per contender, alternated; medians"
        ),
        "flops_formula": "6 * N (matmul parameters) + 12 * layers * hidden * seq per token (PaLM convention)",
        "peak_method": f"median of a {gemm_size}^3 GEMM in the row's dtype, timed in turn with the training steps",
        "rows": rows,
    }


__all__ = ["DTYPES", "SHAPES", "make_training_step", "run_training"]
