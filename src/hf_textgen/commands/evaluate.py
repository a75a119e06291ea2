"""`hf-textgen evaluate`: perplexity of a saved model per token, word, byte and character, printed and as JSON.

Parses the flags (or one .yaml / .json file) and prints; the work is `hf_textgen.evaluation.runner.run_evaluate`.
"""

from __future__ import annotations

import logging
import math
import os
import sys

from hf_textgen.data.arguments import DataArguments
from hf_textgen.errors import UserError, first_line
from hf_textgen.evaluation.runner import RESULTS_NAME, SAMPLE_BY_HELP, EvaluateArguments

# Shown in the end-of-run summary when present (lm-evaluation-harness names).
_HEADLINE = ("perplexity", "word_perplexity", "bits_per_byte", "exact_match", "bleu")


def _raise_user_error(message: str):
    raise UserError(f"{message} (see hf-textgen evaluate --help)")


def parse_args(argv: list[str] | None = None) -> tuple[EvaluateArguments, DataArguments]:
    """Flags, or one .yaml/.json file holding the same names, into `(EvaluateArguments, DataArguments)`."""
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = HfArgumentParser((EvaluateArguments, DataArguments), prog="hf-textgen evaluate")
    for action in parser._actions:
        if action.dest == "sample_by":
            action.help = SAMPLE_BY_HELP  # `auto` follows the model's training reading here, not pretrain's rule
    # argparse would print usage and exit; a UserError gives the CLI's one clear line instead.
    parser.error = _raise_user_error
    try:
        if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
            eval_args, data_args = parser.parse_yaml_file(argv[0])
        elif len(argv) == 1 and argv[0].endswith(".json"):
            eval_args, data_args = parser.parse_json_file(argv[0])
        else:
            eval_args, data_args, extra = parser.parse_args_into_dataclasses(
                argv, return_remaining_strings=True, look_for_args_file=False
            )
            if extra:
                raise UserError(f"unrecognised argument(s): {' '.join(extra)} (see hf-textgen evaluate --help)")
    except (ValueError, TypeError, OSError) as error:
        raise UserError(first_line(error)) from None
    if not eval_args.model_name_or_path:
        raise UserError("--model_name_or_path is required: the model folder to evaluate")
    return eval_args, data_args


def run(args: tuple[EvaluateArguments, DataArguments]) -> int:
    """Evaluate, print the metrics, where they were saved, and what to run next."""
    from hf_textgen.evaluation.runner import format_results, run_evaluate
    from hf_textgen.summary import command, format_summary, recorded_prompt

    eval_args, data_args = args
    # hf_textgen's notes (how the text is read, and why) as plain lines; other libraries keep their own handlers.
    logging.basicConfig(format="%(message)s")
    logging.getLogger("hf_textgen").setLevel(logging.INFO)
    results = run_evaluate(eval_args, data_args)
    print(format_results(results))
    rows = [("model", eval_args.model_name_or_path)]
    if eval_args.output_dir:
        path = os.path.join(eval_args.output_dir, RESULTS_NAME)
        print(f"wrote {path}")
        rows.append(("results", path))
    else:
        rows.append(("results", "printed only (pass --output_dir to keep them as JSON)"))
    figures = [
        f"{key} {results[key]:.4g}"
        for key in _HEADLINE
        if isinstance(results.get(key), float) and math.isfinite(results[key])
    ]
    if figures:
        rows.append(("headline", ", ".join(figures)))
    prompt = recorded_prompt(eval_args.model_name_or_path) if os.path.isdir(eval_args.model_name_or_path) else None
    generate = ["hf-textgen", "generate", "--model_name_or_path", eval_args.model_name_or_path]
    print(format_summary(rows, [command(*generate, "--prompt", prompt) if prompt else command(*generate)]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the flags (or one .yaml/.json file) and evaluate; see `hf-textgen evaluate --help`."""
    return run(parse_args(argv))
