"""`python scripts/train_tokenizer.py ...` = `hf-textgen train-tokenizer ...`."""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.train_tokenizer import main

sys.exit(run_command(main))
