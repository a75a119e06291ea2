"""Check that llama.cpp runs an exported GGUF file with the same tokens and greedy text as transformers.

Not part of `make test`: `pip install llama-cpp-python` compiles llama.cpp (minutes). Then:

    hf-textgen export --model_name_or_path out/my-transformer --format gguf --output_dir out/my-gguf
    python scripts/check_llama_cpp.py --model_name_or_path out/my-transformer --gguf_file out/my-gguf/model.gguf

For each prompt it compares (1) llama.cpp's tokenization of the text (with its default special-token handling,
so a BOS it wrongly prepended would show) with the model folder's tokenizer, and (2) llama.cpp's greedy
completion (temperature 0) with transformers' greedy `generate` on the original folder, token by token. Exits 1
when any differ. Export with the default `--outtype` (the model's own dtype) for an exact comparison: a quantized
file (`q8_0`) can flip a near-tie.
"""

from __future__ import annotations

import argparse
import sys

DEFAULT_PROMPTS = ("To be, or not to be", "ROMEO.\n", "Once upon a time there was", "The king said 1599 times")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model_name_or_path", required=True, help="The hf_textgen Transformer folder exported.")
    parser.add_argument("--gguf_file", required=True, help="The model.gguf that hf-textgen export wrote.")
    parser.add_argument("--prompt", action="append", help="A prompt (repeatable); default: four short ones.")
    parser.add_argument("--max_new_tokens", type=int, default=32)
    args = parser.parse_args()
    prompts = args.prompt or DEFAULT_PROMPTS

    import torch
    from llama_cpp import Llama
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import hf_textgen  # noqa: F401  (registers the Transformer with the Auto classes)

    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(args.model_name_or_path).eval()
    llm = Llama(model_path=args.gguf_file, n_ctx=model.config.max_position_embeddings, verbose=False, seed=0)

    failures = 0
    for prompt in prompts:
        ids = tokenizer(prompt).input_ids
        # add_bos=True asks for the model's own default, which the GGUF metadata says is no BOS.
        llama_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True)
        with torch.no_grad():
            generated = model.generate(torch.tensor([ids]), max_new_tokens=args.max_new_tokens, do_sample=False)
        want = generated[0, len(ids) :].tolist()
        if want and want[-1] == model.config.eos_token_id:
            want = want[:-1]  # llama.cpp stops at EOS without returning it
        got = []
        for token in llm.generate(llama_ids, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0):
            if token == llm.token_eos() or len(got) == args.max_new_tokens:
                break
            got.append(token)
        same_ids, same_text = llama_ids == ids, got == want
        failures += not (same_ids and same_text)
        verdict = {True: "same", False: "DIFFERENT"}
        print(f"{prompt!r}: tokens {verdict[same_ids]}, greedy {verdict[same_text]}")
        if not same_ids:
            print(f"  transformers: {ids}\n  llama.cpp:    {llama_ids}")
        if not same_text:
            print(f"  transformers: {want}\n  llama.cpp:    {got}")
        print(f"  -> {tokenizer.decode(got)!r}")
    print(f"{len(prompts) - failures}/{len(prompts)} prompts agree between llama.cpp and transformers")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
