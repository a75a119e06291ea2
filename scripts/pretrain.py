"""`hf-textgen pretrain` as a script, for `accelerate launch scripts/pretrain.py ...` and `torchrun ...`."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.pretrain import main

sys.exit(run_command(main))
