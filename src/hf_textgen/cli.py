"""The `hf-textgen` console script: one subcommand per module in `hf_textgen.commands`.

Each subcommand module exposes `parse_args(argv)` (flags only: no torch, no model code where the flags allow it),
`run(args) -> int` and `main(argv) = run(parse_args(argv))`, so the thin scripts in `scripts/` (for
`accelerate launch` / `torchrun`) run exactly the same code.

The console script enters through `hf_textgen_cli`, which defers the package's own `__init__` (the Auto-class
registration, i.e. torch and transformers): `--help`, `--version` and flag mistakes answer without it, and
`finish_package_import` runs it once a command has its arguments.
"""

from __future__ import annotations

import importlib
import os
import shlex
import signal
import sys
import threading

from hf_textgen.errors import EXIT_STATUS, CommandInterrupted, Terminated, TrainingInterrupted, UserError

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

# Set on the not-yet-executed package module by `hf_textgen_cli`.
DEFERRED_INIT = "_hf_textgen_deferred_init"


def version() -> str:
    """The installed hf_textgen version (read from the package metadata: importing the package is not needed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed_version

    try:
        return installed_version("hf_textgen")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def _usage() -> str:
    lines = ["usage: hf-textgen <command> [options]   (hf-textgen <command> --help for its options)", "", "commands:"]
    lines += [f"  {name:<16} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "  --version        print the version and exit"]
    return "\n".join(lines)


def finish_package_import() -> None:
    """Run the hf_textgen package's `__init__` (registering the models with the Auto classes) if it was deferred."""
    package = sys.modules.get("hf_textgen")
    if package is not None and package.__dict__.pop(DEFERRED_INIT, False):
        package.__spec__.loader.exec_module(package)


def _raise_terminated(signum, frame):
    raise Terminated


def _launch_prefix(command: str | None) -> list[str]:
    """How the user started this command, for a command line they can paste again."""
    if command is not None:
        return command.split()
    script = sys.argv[0]
    if any(key.startswith("ACCELERATE_") for key in os.environ):
        return ["accelerate", "launch", script]  # with the same launcher options
    if "TORCHELASTIC_RUN_ID" in os.environ:
        return ["torchrun", script]
    return ["python", script]


def resume_command(argv: list[str], checkpoint: str, command: str | None = None) -> str:
    """The command line that resumes `argv` from `checkpoint`: the same arguments plus `--resume_from_checkpoint`.

    For arguments given as one .yaml / .json file, the same command (the file must then name the checkpoint).
    """
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        return shlex.join([*_launch_prefix(command), *argv])
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0].replace("-", "_")
        if name == "__resume_from_checkpoint":
            skip = "=" not in arg
            continue
        kept.append(arg)
    return shlex.join([*_launch_prefix(command), *kept, "--resume_from_checkpoint", checkpoint])


def _print_training_interrupted(stop: TrainingInterrupted, argv: list[str], command: str | None) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return  # one message, from the main process
    lines = [f"stopped: {stop}"]
    if stop.checkpoint is None:
        lines.append("nothing to resume from: run the same command again to start over")
    elif len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
        lines.append(f"to resume, set `resume_from_checkpoint: {stop.checkpoint}` in {argv[0]}, then run:")
        lines.append(f"  {resume_command(argv, stop.checkpoint, command)}")
    else:
        lines.append("resume with:")
        lines.append(f"  {resume_command(argv, stop.checkpoint, command)}")
    print("\n".join(lines), file=sys.stderr, flush=True)


def run_command(main, argv: list[str] | None = None, command: str | None = None) -> int:
    """Run a subcommand's `main`, turning user mistakes into one clear line and exit status 2.

    SIGTERM is handled like Ctrl-C: the command's temporary folders are removed on the way out. A training run
    stopped by either signal ends with the command that resumes it from its last complete checkpoint.

    Args:
        main: The subcommand's `main(argv)`.
        argv: Its arguments; `sys.argv[1:]` when None (the scripts in `scripts/`).
        command: How the user ran it (`hf-textgen pretrain`), for the resume line; None for a script.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if in_main_thread else None
    try:
        return int(main(argv) or 0)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingInterrupted as stop:
        _print_training_interrupted(stop, argv, command)
        return EXIT_STATUS.get(stop.signal_name, 130)
    except CommandInterrupted as stop:
        print(f"stopped: {stop}", file=sys.stderr)
        return stop.exit_status
    except KeyboardInterrupt as interrupt:
        name = "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"
        print(f"interrupted by {name}", file=sys.stderr)
        return EXIT_STATUS[name]
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _command_main(module):
    """The module's `main`, with the package import finished between parsing the flags and running."""
    if not hasattr(module, "parse_args"):

        def main(argv):
            finish_package_import()
            return module.main(argv)

        return main

    def main(argv):
        args = module.parse_args(argv)
        finish_package_import()
        return module.run(args)

    return main


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(f"hf-textgen {version()}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return run_command(_command_main(module), rest, command=f"hf-textgen {name}")


if __name__ == "__main__":
    sys.exit(main())
