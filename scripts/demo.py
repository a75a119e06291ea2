"""`hf-textgen demo` as a script (the same code as the console script)."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.demo import main

sys.exit(run_command(main))
