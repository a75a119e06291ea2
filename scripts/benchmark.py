"""`python scripts/benchmark.py ...` = `hf-textgen bench ...`."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.bench import main

sys.exit(run_command(main))
