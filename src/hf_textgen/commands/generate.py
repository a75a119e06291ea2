"""`hf-textgen generate`: text from a prompt, streamed to the terminal as the model produces it.

The generation flags keep the `GenerationConfig` names; a flag left out falls back to the model's own
`generation_config.json` (the defaults `set_default_generation_config` saved with it). A causal LM continues the
prompt (the prompt is printed, then the continuation as it is produced); an encoder-decoder model takes the prompt
as its source and prints only its output.
"""

from __future__ import annotations

import argparse
import sys

from hf_textgen.errors import UserError

# The flags that are GenerationConfig fields, passed on under the same names.
GENERATION_FLAGS = (
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "num_beams",
    "repetition_penalty",
    "num_return_sequences",
)


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):
        # argparse would print usage and exit; a UserError gives the CLI's one clear line instead.
        raise UserError(f"{message} (see hf-textgen generate --help)")


def _bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The `hf-textgen generate` flags."""
    parser = _ArgumentParser(
        prog="hf-textgen generate",
        description="Generate text from a prompt with a saved model, streamed as it is produced. Flags left out "
        "fall back to the model's generation_config.json.",
    )
    parser.add_argument(
        "--model_name_or_path", required=True, help="The model folder (e.g. written by hf-textgen pretrain)."
    )
    parser.add_argument("--tokenizer_name", help="A tokenizer folder; default: the model's.")
    parser.add_argument(
        "--trust_remote_code", action="store_true", help="Allow a model folder whose code is not installed."
    )
    parser.add_argument(
        "--prompt",
        help="The text to continue (encoder-decoder: the source). Without it the prompt is read from standard "
        "input. A prompt longer than the model's context is cut from the left, keeping the most recent text, "
        "with a warning.",
    )
    group = parser.add_argument_group("generation (GenerationConfig names)")
    group.add_argument("--max_new_tokens", type=_positive(int), help="Tokens to generate at most.")
    group.add_argument(
        "--do_sample",
        type=_bool,
        nargs="?",
        const=True,
        help="Sample (--do_sample or --do_sample true) or decode greedily / by beam search (--do_sample false).",
    )
    group.add_argument("--temperature", type=_positive(float), help="Sampling temperature (> 0; lower = safer).")
    group.add_argument("--top_k", type=_non_negative_int, help="Sample among the k likeliest tokens (0 = all).")
    group.add_argument("--top_p", type=_probability, help="Nucleus sampling: the smallest set with this mass.")
    group.add_argument("--num_beams", type=_positive(int), help="Beam search with this many beams (1 = none).")
    group.add_argument(
        "--repetition_penalty", type=_positive(float), help="> 1 discourages repeating tokens already present."
    )
    group.add_argument(
        "--num_return_sequences", type=_positive(int), help="Sequences to return (sampling, or <= num_beams)."
    )
    group.add_argument("--seed", type=int, help="Random seed: the same seed gives the same sampled text.")
    return parser


def _count_unknown(tokenizer, token_ids: list[int]) -> int:
    unk_token_id = tokenizer.unk_token_id
    return 0 if unk_token_id is None else token_ids.count(unk_token_id)


def _read_prompt(args: argparse.Namespace) -> str:
    if args.prompt is not None:
        return args.prompt
    if sys.stdin is None or sys.stdin.isatty():
        print("reading the prompt from standard input (end it with Ctrl-D)", file=sys.stderr)
    text = sys.stdin.read() if sys.stdin is not None else ""
    # `echo text | hf-textgen generate` ends the prompt with a newline the user did not mean as text.
    return text[:-1] if text.endswith("\n") else text


def _utf8_safe_stdout() -> None:
    # A terminal or pipe that cannot encode some characters gets replacements, never a UnicodeEncodeError.
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    if encoding != "utf8" and hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="replace")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags of `hf-textgen generate`; mistakes become one-line `UserError`s."""
    return build_parser().parse_args(sys.argv[1:] if argv is None else argv)


def run(args: argparse.Namespace) -> int:
    """Load the model and print the generated text (streamed where one sequence is asked for)."""
    from transformers.utils import logging as transformers_logging

    from hf_textgen.generation import generate_text, generation_config_with, load_model_and_tokenizer, prepare_prompt

    prompt = _read_prompt(args)
    if not prompt.strip():
        raise UserError("the prompt is empty; pass --prompt TEXT or pipe the text on standard input")
    # The weight-loading progress bar would interleave with the generated text.
    transformers_logging.disable_progress_bar()
    try:
        model, tokenizer = load_model_and_tokenizer(
            args.model_name_or_path, args.tokenizer_name, args.trust_remote_code
        )
    finally:
        transformers_logging.enable_progress_bar()
    if not model.can_generate():
        raise UserError(f"{args.model_name_or_path} holds a {type(model).__name__}, which cannot generate text")
    generation_config = generation_config_with(
        model, tokenizer, **{name: getattr(args, name) for name in GENERATION_FLAGS}
    )
    prepared = prepare_prompt(model, tokenizer, prompt, generation_config.max_new_tokens)
    if prepared.num_dropped:
        print(
            f"warning: the prompt is longer than the model's context; its first {prepared.num_dropped} tokens were "
            f"cut, keeping the last {prepared.input_ids.shape[1]}",
            file=sys.stderr,
        )
    unknown = _count_unknown(tokenizer, prepared.input_ids[0].tolist())
    if unknown:
        print(
            f"warning: {unknown} prompt token(s) are not in the model's vocabulary and were read as "
            f"{tokenizer.unk_token}",
            file=sys.stderr,
        )
    _utf8_safe_stdout()
    streamed = (generation_config.num_beams or 1) == 1 and (generation_config.num_return_sequences or 1) == 1
    texts = generate_text(model, tokenizer, prompt, prepared, generation_config, seed=args.seed, stream=streamed)
    if streamed:
        return 0
    for index, text in enumerate(texts, start=1):
        if len(texts) > 1:
            print(f"--- sequence {index} of {len(texts)} ---")
        print(text)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, load the model, and print the generated text; see `hf-textgen generate --help`."""
    return run(parse_args(argv))
