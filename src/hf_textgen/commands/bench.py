"""`hf-textgen bench`: the side-by-side benchmarks (issue 9), written as `results.json`, `table.txt` and PNG plots.

Examples:
    hf-textgen bench --output_dir bench_results            # the README run (tens of minutes on 2 cores)
    hf-textgen bench --output_dir /tmp/bench --quick       # every part shrunk: a few minutes
    hf-textgen bench --output_dir /tmp/bench --only training generation --torch_compile
    hf-textgen bench --output_dir gpu --device cuda --only training --shapes medium gpt2 --dtypes bf16
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from hf_textgen.benchmarks import COMPARISONS, SHAPES, BenchSettings, run_benchmarks
from hf_textgen.errors import UserError, atomic_output_dir
from hf_textgen.summary import command, format_summary


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-textgen bench",
        description=(
            "Measure hf_textgen's models side by side with transformers' Llama (and RNN vs Transformer), "
            "alternating the contenders after a warm-up and reporting medians and ratios."
        ),
    )
    parser.add_argument("--output_dir", required=True, help="folder for results.json, table.txt and the PNG plots")
    parser.add_argument("--overwrite_output_dir", action="store_true", help="replace a non-empty --output_dir")
    parser.add_argument("--quick", action="store_true", help="shrink every part (fewer repeats, steps, contexts)")
    parser.add_argument("--only", nargs="+", choices=COMPARISONS, metavar="NAME", help=f"any of {COMPARISONS}")
    parser.add_argument("--torch_compile", action="store_true", help="also time training under torch.compile")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (the quality and transfer parts are CPU only)")
    parser.add_argument("--num_threads", type=int, help="CPU threads for PyTorch (default: every available CPU)")
    parser.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), help="training and generation shapes")
    parser.add_argument("--dtypes", nargs="+", choices=("fp32", "bf16"), help="training dtypes (bf16 = autocast)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def settings_from_args(args: argparse.Namespace) -> BenchSettings:
    """Turn parsed flags into `BenchSettings`, rejecting combinations that cannot run."""
    overrides = {"device": args.device, "torch_compile": args.torch_compile, "seed": args.seed}
    if args.only:
        overrides["only"] = tuple(args.only)
    if args.num_threads is not None:
        if args.num_threads < 1:
            raise UserError(f"--num_threads must be at least 1, got {args.num_threads}")
        overrides["num_threads"] = args.num_threads
    if args.shapes:
        overrides["shapes"] = {name: SHAPES[name] for name in args.shapes}
        overrides["generation_shapes"] = dict(overrides["shapes"])
    if args.dtypes:
        overrides["dtypes"] = tuple(args.dtypes)
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise UserError(f"--device {args.device!r} is not a device name: use cpu or cuda ({error})") from None
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"--device must be cpu or cuda, got {args.device!r}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda, but PyTorch sees no CUDA GPU: run on a GPU machine or use --device cpu")
        only = overrides.get("only", COMPARISONS)
        if {"quality", "transfer", "finetune_recipe"} & set(only):
            raise UserError("the quality and transfer comparisons are CPU only: pass --only training generation")
        overrides.setdefault("gemm_size", 8192)
    return BenchSettings.quick(**overrides) if args.quick else BenchSettings.full(**overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from_args(args)
    with atomic_output_dir(args.output_dir, overwrite=args.overwrite_output_dir) as folder:
        run_benchmarks(settings, folder)
    print(f"results written to {args.output_dir}/results.json")
    output_dir = Path(args.output_dir)
    rows = [("results", f"{output_dir / 'results.json'}  (every measurement, the machine and the settings)")]
    if (output_dir / "table.md").is_file():
        rows.append(("table", f"{output_dir / 'table.md'}  (ratios, ready for the README)"))
    plots = sorted(path.name for path in output_dir.glob("*.png"))
    if plots:
        rows.append(("plots", f"{output_dir}/  ({', '.join(plots)})"))
    print(format_summary(rows, [command("cat", output_dir / ("table.md" if len(rows) > 1 else "results.json"))]))
    return 0
