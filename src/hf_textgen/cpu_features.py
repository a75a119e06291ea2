"""What the CPU's matrix units can do, detected rather than assumed, and what that means for `--bf16` / `--fp16`.

bf16 autocast on a CPU is only fast with native bfloat16 instructions (AVX-512 BF16 or AMX); without them PyTorch
emulates it, and a training step of the demo-sized Transformer measured about 40x slower than fp32 on a 2-core
AMD EPYC with AVX2 only (30.5 s vs 0.8 s). fp16 needs AVX-512 FP16 or AMX-FP16 likewise.

The flags come from `/proc/cpuinfo` (Linux), capped by the kernels PyTorch actually dispatches to
(`torch.backends.cpu.get_cpu_capability()`, which `ATEN_CPU_CAPABILITY=avx2` lowers): a CPU with AVX-512 that
PyTorch is told not to use counts as AVX2-only.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

# Measured on a 2-core AMD EPYC with AVX2 only: one training step of the small Transformer shape (hidden 256,
# 4 layers, vocabulary 8192, batch 8 x 256, 2 threads) took 0.8 s in fp32 and 30.5 s under bf16 autocast.
EMULATED_BF16_SLOWDOWN = 40


@dataclass(frozen=True)
class CPUFeatures:
    """The matrix-relevant instruction sets of this CPU that PyTorch can use.

    Attributes:
        avx2: AVX2 (256-bit vectors).
        avx512: AVX-512 Foundation (512-bit vectors).
        avx512_bf16: AVX-512 BF16 (native bfloat16 dot products).
        avx512_fp16: AVX-512 FP16 (native half-precision arithmetic).
        amx: AMX tiles (matrix units; `amx_bf16` / `amx_fp16` say which types they multiply).
        amx_bf16: AMX with bfloat16.
        amx_fp16: AMX with float16.
        torch_capability: The vector kernels PyTorch dispatches to (`"AVX512"`, `"AVX2"`, `"DEFAULT"`, ...).
        avx512_unused: The CPU has AVX-512 but PyTorch is told not to use it (`ATEN_CPU_CAPABILITY`,
            `ONEDNN_MAX_CPU_ISA`), e.g. to emulate an AVX2-only machine.
    """

    avx2: bool
    avx512: bool
    avx512_bf16: bool
    avx512_fp16: bool
    amx: bool
    amx_bf16: bool
    amx_fp16: bool
    torch_capability: str
    avx512_unused: bool = False

    @property
    def native_bf16(self) -> bool:
        """Whether bf16 matrix products run natively (AVX-512 BF16 or AMX-BF16), so bf16 autocast can pay off."""
        return self.avx512_bf16 or self.amx_bf16

    @property
    def native_fp16(self) -> bool:
        """Whether fp16 arithmetic runs natively (AVX-512 FP16 or AMX-FP16)."""
        return self.avx512_fp16 or self.amx_fp16

    def describe(self) -> str:
        """One line for a header, e.g. `"AVX2, AVX-512, AVX-512 BF16, no AMX"`."""
        names = [
            name
            for name, present in (
                ("AVX2", self.avx2),
                ("AVX-512", self.avx512),
                ("AVX-512 BF16", self.avx512_bf16),
                ("AVX-512 FP16", self.avx512_fp16),
            )
            if present
        ]
        if self.amx:
            names.append(
                "AMX (" + "/".join(t for t, on in (("BF16", self.amx_bf16), ("FP16", self.amx_fp16)) if on) + ")"
            )
        else:
            names.append("no AMX")
        if not (self.avx2 or self.avx512):
            names.insert(0, "no AVX2")
        if self.avx512_unused:
            names.append("AVX-512 present but disabled for PyTorch")
        return ", ".join(names)


def parse_cpu_flags(cpuinfo: str) -> set[str]:
    """The `flags` of the first processor in a `/proc/cpuinfo` text (empty when there is none)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def features_from(flags: set[str], torch_capability: str) -> CPUFeatures:
    """`CPUFeatures` from CPU flags, keeping only what PyTorch's dispatched kernels (`torch_capability`) can use."""
    capability = torch_capability.upper()
    # PyTorch told (or able) to use only AVX2 kernels: the AVX-512 units are as good as absent for it.
    avx512_usable = capability.startswith("AVX512") and os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() not in (
        "AVX2",
        "AVX",
        "SSE41",
    )
    avx512 = "avx512f" in flags and avx512_usable
    amx = "amx_tile" in flags and avx512_usable
    return CPUFeatures(
        avx2="avx2" in flags or capability in ("AVX2", "AVX512") or avx512,
        avx512=avx512,
        avx512_bf16="avx512_bf16" in flags and avx512,
        avx512_fp16="avx512_fp16" in flags and avx512,
        amx=amx,
        amx_bf16="amx_bf16" in flags and amx,
        amx_fp16="amx_fp16" in flags and amx,
        torch_capability=torch_capability,
        avx512_unused="avx512f" in flags and not avx512_usable,
    )


def detect_cpu_features() -> CPUFeatures:
    """This machine's `CPUFeatures` (from `/proc/cpuinfo` where it exists, else PyTorch's capability alone)."""
    try:
        flags = parse_cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: only what PyTorch reports
        flags = set()
    return features_from(flags, torch.backends.cpu.get_cpu_capability())


_warned: set[str] = set()


def warn_if_half_precision_is_emulated(bf16: bool, fp16: bool = False, bf16_flag: str = "--bf16") -> None:
    """Print one warning (per precision, per process) when bf16 / fp16 training will be emulated on this CPU.

    Only for CPU training: on a machine with a CUDA GPU nothing is printed. The warning names the CPU's features,
    the slowdown to expect and the fix (drop the flag).

    Args:
        bf16: bf16 autocast was asked for.
        fp16: fp16 autocast was asked for.
        bf16_flag: How the user asked for bf16 (`"--bf16"`, or e.g. `"--dtypes bf16"` for the bench).
    """
    if torch.cuda.is_available():
        return
    features = detect_cpu_features()
    for flag, wanted, native, natives in (
        (bf16_flag, bf16, features.native_bf16, "AVX-512 BF16 or AMX"),
        ("--fp16", fp16, features.native_fp16, "AVX-512 FP16 or AMX-FP16"),
    ):
        if not wanted or native or flag in _warned:
            continue
        _warned.add(flag)
        precision, slowdown = (
            ("bf16", f"about {EMULATED_BF16_SLOWDOWN}x slower than fp32 (measured on an AVX2-only CPU)")
            if flag == bf16_flag
            else ("fp16", "expect several times slower than fp32")
        )
        print(
            f"warning: {flag}: this CPU ({features.describe()}) has no {natives}, so PyTorch emulates {precision} "
            f"arithmetic: {slowdown}. Drop {flag} to train in fp32.",
            file=sys.stderr,
            flush=True,
        )
