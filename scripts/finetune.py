"""`hf-textgen finetune` as a script, for `accelerate launch scripts/finetune.py ...` and `torchrun ...`."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.finetune import main

sys.exit(run_command(main))
