"""`hf-textgen evaluate` as a script (the same code as the console script)."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.evaluate import main

sys.exit(run_command(main))
