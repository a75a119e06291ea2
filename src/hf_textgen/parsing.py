"""`parse_arguments`: command-line flags, or one YAML / JSON file holding the same names, into argument dataclasses.

Torch-free (only `transformers.hf_argparser`), so a command whose dataclasses are light answers `--help` and flag
mistakes without importing torch.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

import yaml
from transformers.hf_argparser import string_to_bool

from hf_textgen.errors import UserError, first_line


def _read_error(path: str, error: BaseException) -> UserError:
    reason = first_line(error)
    if isinstance(error, yaml.MarkedYAMLError) and error.problem_mark is not None:
        # PyYAML's own message spans several lines and quotes the file back.
        reason = f"{error.problem} (line {error.problem_mark.line + 1}, column {error.problem_mark.column + 1})"
    return UserError(f"cannot read the arguments file {path}: {reason}")


_TYPE_NAMES = {int: "an integer", float: "a number", string_to_bool: "true or false"}


def _typed_as_flags(parser, path: str, values: dict[str, Any]) -> dict[str, Any]:
    """A file's int, float and bool values converted as the same flags are, or a `UserError` naming the one that fails.

    `HfArgumentParser.parse_dict` passes values to the dataclasses untouched, and YAML reads `1e-3` (no dot) or
    `'7'` as strings, which would reach the optimizer or the Trainer's checks and fail there with a traceback.
    """
    converters = {action.dest: action.type for action in parser._actions if action.type in _TYPE_NAMES}
    typed = dict(values)
    for name, value in values.items():
        convert = converters.get(name)
        if convert is None or value is None:
            continue
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(value, str):
            try:
                typed[name] = convert(value)
                continue
            except (ValueError, argparse.ArgumentTypeError):
                pass
        elif convert is float and is_number:
            typed[name] = float(value)
            continue
        elif (convert is int and is_number and isinstance(value, int)) or (
            convert is string_to_bool and isinstance(value, bool)
        ):
            continue
        raise UserError(f"{path}: {name} must be {_TYPE_NAMES[convert]}, got {value!r}")
    return typed


def _parse_file(parser, path: str) -> tuple:
    """`HfArgumentParser.parse_dict` on a YAML or JSON file (typed as flags); mistakes as one-line `UserError`s."""
    try:
        with open(path, encoding="utf-8") as file:
            values = json.load(file) if path.endswith(".json") else yaml.safe_load(file)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, json.JSONDecodeError) as error:
        raise _read_error(path, error) from None
    if not isinstance(values, dict):
        raise UserError(f"the arguments file {path} must hold a mapping of argument names to values")
    values = _typed_as_flags(parser, path, values)
    try:
        return parser.parse_dict(values)
    except UserError as error:  # a dataclass's own check, e.g. no output_dir
        raise UserError(f"{path}: {error}") from None
    except ValueError as error:
        unused = re.search(r"not used by the HfArgumentParser: \[(.*)\]", str(error))
        if unused:
            raise UserError(f"unknown argument(s) in {path}: {unused.group(1)}") from None
        raise UserError(f"{path}: {first_line(error)}") from None


def _raise_user_error(message: str):
    # argparse would print its usage and exit; a UserError gives the CLI's one clear line instead.
    raise UserError(f"{message} (see --help)")


def parse_arguments(
    dataclass_types: tuple[type, ...], argv: list[str] | None = None, prog: str | None = None
) -> tuple:
    """Parse command-line flags, or one `.yaml` / `.json` file holding the same names, into the dataclasses.

    Args:
        dataclass_types: The argument dataclasses, e.g. `(ModelArguments, DataArguments, PretrainingArguments)`;
            a command's own defaults live in its dataclasses (see `with_defaults`).
        argv: The arguments (without the program name); `sys.argv[1:]` when None.
        prog: The program name shown in `--help`.

    Returns:
        One instance per dataclass type, in order.

    Raises:
        UserError: unknown names, bad values, a missing `--output_dir`, or an unreadable arguments file.
    """
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    # exit_on_error=False: a bad value becomes one `error:` line instead of a 200-flag usage screen.
    parser = HfArgumentParser(dataclass_types, prog=prog, exit_on_error=False)
    parser.error = _raise_user_error
    try:
        if len(argv) == 1 and argv[0].endswith((".yaml", ".yml", ".json")):
            parsed = _parse_file(parser, argv[0])
        else:
            try:
                *parsed, extra = parser.parse_args_into_dataclasses(
                    argv, return_remaining_strings=True, look_for_args_file=False
                )
            except argparse.ArgumentError as error:
                raise UserError(f"{error} (see --help)") from None
            if extra:
                raise UserError(f"unrecognised argument(s): {' '.join(extra)} (see --help)")
    except UserError:
        raise
    except (ValueError, TypeError) as error:  # a dataclass's own validation
        raise UserError(first_line(error)) from None
    for arguments in parsed:
        if "output_dir" in arguments.__dataclass_fields__ and not arguments.output_dir:
            raise UserError("--output_dir is required: the folder the results are written to")
    return tuple(parsed)
