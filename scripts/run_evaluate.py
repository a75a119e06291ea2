"""`hf-textgen evaluate` as a script (the same code as the console script).

Not named `evaluate.py`: Python puts a script's own folder first on `sys.path`, so a `scripts/evaluate.py` would
shadow the `evaluate` library for every script in this folder (`python scripts/finetune.py` would import it).
"""

import sys

from hf_textgen.cli import run_command
from hf_textgen.commands.evaluate import main

sys.exit(run_command(main))
