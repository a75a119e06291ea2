"""Entry point of the `hf-textgen` console script, kept outside the `hf_textgen` package on purpose.

Importing `hf_textgen` registers its models with the transformers Auto classes, which imports torch and
transformers: seconds of CPU that `hf-textgen --help`, `--version` and a mistyped flag do not need. So this module
puts the package in `sys.modules` without running its `__init__`; `hf_textgen.cli.finish_package_import` runs it
once a command has parsed its arguments and is about to work. Everything else (`import hf_textgen`,
`scripts/*.py`, `python -m`) imports the package as usual.
"""

from __future__ import annotations

import importlib.util
import sys


def main(argv: list[str] | None = None) -> int:
    """Run `hf-textgen` (see `hf_textgen.cli.main`)."""
    if "hf_textgen" not in sys.modules:
        spec = importlib.util.find_spec("hf_textgen")
        package = importlib.util.module_from_spec(spec)
        package._hf_textgen_deferred_init = True  # hf_textgen.cli.DEFERRED_INIT
        sys.modules["hf_textgen"] = package
    from hf_textgen.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
