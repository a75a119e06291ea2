"""Sharing on the Hugging Face Hub: model cards (`model_card`) and the one-commit push (`push`)."""

from hf_textgen.hub.model_card import render_model_card, write_model_card
from hf_textgen.hub.push import push_model_folder, push_training_output

__all__ = ["push_model_folder", "push_training_output", "render_model_card", "write_model_card"]
