"""Comparisons 3 and 4: greedy generation speed (ours vs Llama) and cost growth with context (RNN vs Transformer).

Both go through `model.generate` (GenerationMixin, with each model's own cache), so they measure what a user
gets. End of sequence is disabled so every call produces exactly the requested number of tokens.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from transformers import GenerationConfig, LogitsProcessor, LogitsProcessorList

from hf_textgen.benchmarks.contenders import Shape, build_ours, build_pair, build_rnn
from hf_textgen.benchmarks.timing import alternate, synchronize


class StepClock(LogitsProcessor):
    """Stamps the time each time `generate` has the next-token scores: the gaps are the per-token decode times.

    The first stamp comes after the prompt's forward pass (prefill), so the gaps between stamps time decoding
    alone, whatever the context length.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.stamps: list[float] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())
        return scores

    def per_token_seconds(self) -> float:
        """The median gap between consecutive decode steps."""
        gaps = [later - earlier for earlier, later in zip(self.stamps, self.stamps[1:])]
        return statistics.median(gaps)


def _greedy(new_tokens: int) -> GenerationConfig:
    # min_new_tokens is not used: it adds a logits processor; with eos_token_id None nothing stops early.
    return GenerationConfig(
        max_new_tokens=new_tokens, do_sample=False, eos_token_id=None, pad_token_id=0, use_cache=True
    )


def make_generate(
    model: torch.nn.Module, prompt: torch.Tensor, new_tokens: int, clock: StepClock | None = None
) -> Callable[[], float | torch.Tensor]:
    """A callable running one greedy `generate`.

    It returns the median per-token decode time when clocked, else the generated tokens `(batch, new_tokens)`.
    """
    config = _greedy(new_tokens)
    attention_mask = torch.ones_like(prompt)
    processors = LogitsProcessorList([clock] if clock is not None else [])

    def generate() -> float | torch.Tensor:
        if clock is not None:
            clock.stamps.clear()
        with torch.inference_mode():
            output = model.generate(
                input_ids=prompt,
                attention_mask=attention_mask,
                generation_config=config,
                logits_processor=processors,
            )
        if output.shape[1] != prompt.shape[1] + new_tokens:
            raise RuntimeError(f"generate returned {output.shape[1] - prompt.shape[1]} tokens, not {new_tokens}")
        return clock.per_token_seconds() if clock is not None else output[:, prompt.shape[1] :]

    return generate


def run_generation(
    shapes: dict[str, Shape],
    batch_sizes: list[int],
    prompt_len: int,
    new_tokens: int,
    repeats: int,
    warmup: int,
    device: torch.device,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Greedy generation tokens/s, ours vs Llama, at each shape and batch size.

    Tokens/s counts the generated tokens of the whole batch over the whole `generate` call (prefill included).

    Returns:
        `{"rows": [...]}` with, per shape and batch size, both contenders' samples, median tokens/s and the
        ratio of the medians.
    """
    rows = []
    for shape_name, shape in shapes.items():
        torch.manual_seed(seed)
        models = {name: model.to(device).eval() for name, model in build_pair(shape, prompt_len + new_tokens).items()}
        for batch_size in batch_sizes:
            prompt = torch.randint(0, shape.vocab_size, (batch_size, prompt_len), device=device)
            calls = {name: make_generate(model, prompt, new_tokens) for name, model in models.items()}
            log(f"  generation {shape_name} batch {batch_size}: {' / '.join(calls)}")
            timed = alternate(calls, repeats=repeats, warmup=warmup, device=device)
            contenders = {
                name: {
                    "seconds": timed.seconds[name],
                    "median_seconds": timed.median(name),
                    "tokens_per_second": batch_size * new_tokens / timed.median(name),
                }
                for name in calls
            }
            ratio = timed.speedup("ours", "llama")
            # Same weights: greedy decoding should pick the same tokens (near-ties may flip on rounding).
            same = (timed.extras["ours"][-1] == timed.extras["llama"][-1]).float().mean().item()
            rows.append(
                {
                    "shape": shape_name,
                    "batch_size": batch_size,
                    "prompt_len": prompt_len,
                    "new_tokens": new_tokens,
                    "order": timed.order,
                    "contenders": contenders,
                    "ratios": {"ours_vs_llama": ratio},
                    "same_greedy_tokens": same,
                }
            )
            log(
                f"    ours {contenders['ours']['tokens_per_second']:.0f} tok/s vs llama "
                f"{contenders['llama']['tokens_per_second']:.0f} tok/s: {ratio:.2f}x"
            )
    return {
        "method": (
            f"model.generate, greedy, random {prompt_len}-token prompt, {new_tokens} new tokens, no EOS stop; "
            f"{warmup} warm-up call(s) then {repeats} timed calls per contender, alternated; medians"
        ),
        "rows": rows,
    }


def run_context_growth(
    shape: Shape,
    context_lengths: list[int],
    new_tokens: int,
    repeats: int,
    warmup: int,
    device: torch.device,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Time per generated token against context length, RNN (LSTM) vs our Transformer, batch 1.

    At each context length the prompt is that long; the per-token time is the median gap between decode steps
    (prefill excluded), so it shows how a step's cost grows with what the model has already seen.

    Returns:
        `{"context_lengths": [...], "contenders": {name: {"per_token_seconds": [...], "samples": [...]}},
        "growth": {name: last / first}, "orders": [...]}`.
    """
    torch.manual_seed(seed)
    longest = max(context_lengths) + new_tokens
    models = {
        "rnn": build_rnn(shape).to(device).eval(),
        "transformer": build_ours(shape, longest).to(device).eval(),
    }
    per_token = {name: [] for name in models}
    samples = {name: [] for name in models}
    orders = []
    for length in context_lengths:
        prompt = torch.randint(0, shape.vocab_size, (1, length), device=device)
        calls = {
            name: make_generate(model, prompt, new_tokens, clock=StepClock(device)) for name, model in models.items()
        }
        timed = alternate(calls, repeats=repeats, warmup=warmup, device=device)
        orders.append(timed.order)
        for name in models:
            samples[name].append(timed.extras[name])
            per_token[name].append(statistics.median(timed.extras[name]))
        log(f"  context {length}: " + ", ".join(f"{name} {per_token[name][-1] * 1e3:.2f} ms/token" for name in models))
    growth = {name: values[-1] / values[0] for name, values in per_token.items()}
    return {
        "method": (
            f"model.generate, greedy, batch 1, prompt of each context length, {new_tokens} new tokens; per-token "
            f"time = median gap between decode steps (prefill excluded); {repeats} calls per contender, alternated"
        ),
        "shape": shape.to_dict(),
        "context_lengths": list(context_lengths),
        "contenders": {name: {"per_token_seconds": per_token[name], "samples": samples[name]} for name in models},
        "growth": growth,
        "orders": orders,
    }
