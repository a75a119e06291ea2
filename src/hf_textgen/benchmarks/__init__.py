"""`hf-textgen bench`: the project's models measured side by side with transformers' own, in one process.

One module per comparison (`training`: throughput and MFU, `generation`: generation speed and cost growth with
context, `quality`: validation loss vs time at nanoGPT's setting, `transfer`: what pretraining buys, pretrained vs
scratch fine-tuning and the fine-tuning recipe ablation), shared timing in `timing`, the contenders in
`contenders`, and `runner` tying them together.
"""

from hf_textgen.benchmarks.contenders import SHAPES, Shape
from hf_textgen.benchmarks.runner import COMPARISONS, BenchSettings, format_table, run_benchmarks

__all__ = ["COMPARISONS", "SHAPES", "BenchSettings", "Shape", "format_table", "run_benchmarks"]
