#!/usr/bin/env bash
# Issue 9's GPU check, one short run: training tokens/s and MFU (against the GPU's measured bf16 GEMM peak) and
# greedy generation, ours vs transformers' Llama, at the medium shape and at GPT-2 small's size (124M
# parameters, seq 1024), bf16 autocast. A few minutes on an A100/H100-class GPU.
#
#   scripts/gpu_bench.sh [OUTPUT_DIR]            # default gpu_bench_results
#   TORCH_COMPILE=1 scripts/gpu_bench.sh         # also measure torch.compile on and off (adds compile time)
#   PYTHON=.venv/bin/python scripts/gpu_bench.sh # the interpreter that has hf_textgen and a CUDA torch
set -euo pipefail

output_dir="${1:-gpu_bench_results}"
python="${PYTHON:-python}"
cd "$(dirname "$0")/.."

"$python" - <<'PY'
import sys

import torch

if not torch.cuda.is_available():
    sys.exit("error: PyTorch sees no CUDA GPU; install a CUDA build of torch and run this on the GPU machine")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
PY

"$python" scripts/benchmark.py --device cuda --only training generation --shapes medium gpt2 --dtypes bf16 \
    --output_dir "$output_dir" --overwrite_output_dir ${TORCH_COMPILE:+--torch_compile}
