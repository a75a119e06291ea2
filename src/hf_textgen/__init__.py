"""hf_textgen: RNN, Transformer and encoder-decoder language models as first-class transformers models.

Importing the package registers every config and model with the transformers Auto classes.
"""

from hf_textgen import models as _models  # noqa: F401  (registers the Auto classes)
from hf_textgen.models import *  # noqa: F403

__version__ = "0.1.0"
