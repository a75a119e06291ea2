"""`hf-textgen export` as a script."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.export import main

sys.exit(run_command(main))
