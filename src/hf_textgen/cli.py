"""The `hf-textgen` console script: one subcommand per module in `hf_textgen.commands`.

Each subcommand module exposes `main(argv: list[str] | None = None) -> int` and parses its own arguments, so
the thin scripts in `scripts/` (for `accelerate launch` / `torchrun`) run exactly the same code.
"""

from __future__ import annotations

import importlib
import sys

from hf_textgen.errors import UserError

# name -> (module, one-line help). A subcommand is listed here only once it works.
COMMANDS: dict[str, tuple[str, str]] = {
    "train-tokenizer": ("hf_textgen.commands.train_tokenizer", "train a byte-level BPE (or char / word) tokenizer"),
    "pretrain": ("hf_textgen.commands.pretrain", "causal-LM pretraining with the Trainer (bundled corpus by default)"),
    "finetune": ("hf_textgen.commands.finetune", "fine-tuning: causal_lm, prompt_completion, classification, seq2seq"),
    "evaluate": ("hf_textgen.commands.evaluate", "perplexity per token and per word, printed and saved as JSON"),
    "generate": ("hf_textgen.commands.generate", "text from a prompt, streamed to the terminal"),
    "demo": ("hf_textgen.commands.demo", "the main job: tokenizer, pretraining, evaluation, sample, in minutes"),
    "bench": ("hf_textgen.commands.bench", "side-by-side benchmarks vs transformers' Llama, JSON and PNG"),
    "push": ("hf_textgen.commands.push", "upload model, tokenizer, code, metrics and model card to the Hub"),
    "export": ("hf_textgen.commands.export", "a Transformer as a plain Llama folder (serving engines) or GGUF"),
}


def _usage() -> str:
    lines = ["usage: hf-textgen <command> [options]   (hf-textgen <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def run_command(main, argv: list[str] | None = None) -> int:
    """Run a subcommand's `main`, turning user mistakes into one clear line and exit status 2."""
    try:
        return int(main(argv) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return run_command(module.main, rest)


if __name__ == "__main__":
    sys.exit(main())
