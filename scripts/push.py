"""`hf-textgen push` as a script."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.push import main

sys.exit(run_command(main))
