"""Check that vLLM serves an exported Llama folder with the same greedy tokens as transformers.

Not part of `make test`: vLLM is a multi-GB install. Run it where vLLM is installed (a GPU machine, or the CPU
build, `pip install vllm` with its CPU wheel per vLLM's docs):

    hf-textgen export --model_name_or_path out/my-transformer --format llama --output_dir out/my-llama
    python scripts/check_vllm.py --model_dir out/my-llama --max_new_tokens 32

It prints, per prompt, the new tokens from transformers' `generate` (greedy) and from vLLM (temperature 0), and
exits 1 when any differ. Both run in float32 by default (`--dtype`), so a difference means the export or the engine
disagrees, not rounding; in bf16/fp16 a near-tie between two tokens can legitimately flip late in a long sequence.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_PROMPTS = ("To be, or not to be", "ROMEO.\n", "Once upon a time there was", "The king said")


def transformers_greedy(model_dir: str, prompts, max_new_tokens: int, dtype: str) -> list[list[int]]:
    """New token ids from transformers' `generate`, greedy, one prompt at a time (no padding involved)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).eval()
    outputs = []
    for prompt in prompts:
        inputs = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad():
            generated = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        outputs.append(generated[0, inputs.input_ids.shape[1] :].tolist())
    return outputs


def vllm_greedy(model_dir: str, prompts, max_new_tokens: int, dtype: str) -> list[list[int]]:
    """New token ids from vLLM at temperature 0 (it tokenizes the text prompts itself, as a server would)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model_dir, dtype=dtype, enforce_eager=True)
    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
    return [list(result.outputs[0].token_ids) for result in llm.generate(list(prompts), params)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_dir", required=True, help="A folder written by hf-textgen export --format llama.")
    parser.add_argument("--prompt", action="append", help="A prompt (repeatable); default: four short ones.")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    args = parser.parse_args()
    prompts = args.prompt or DEFAULT_PROMPTS

    expected = transformers_greedy(args.model_dir, prompts, args.max_new_tokens, args.dtype)
    actual = vllm_greedy(args.model_dir, prompts, args.max_new_tokens, args.dtype)
    mismatches = 0
    for prompt, want, got in zip(prompts, expected, actual):
        # transformers stops at EOS and vLLM too, so the lists are compared as they are.
        same = want == got
        mismatches += not same
        first = next((i for i, (a, b) in enumerate(zip(want, got)) if a != b), min(len(want), len(got)))
        where = "" if same else f", from token {first}"
        print(f"{'same' if same else 'DIFFERENT'}  {prompt!r}: {len(want)} tokens{where}")
        if not same:
            print(f"  transformers: {want}\n  vllm:         {got}")
    print(f"{len(prompts) - mismatches}/{len(prompts)} prompts give the same greedy tokens in vLLM and transformers")
    return 1 if mismatches else 0


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    sys.exit(main())
