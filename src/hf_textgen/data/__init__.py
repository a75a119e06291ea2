"""The data pipeline shared by every command: load raw text, tokenize and pack it, and train tokenizers."""

from __future__ import annotations

from hf_textgen._lazy import lazy_attributes

# name -> the module that defines it: imported on first use (see hf_textgen._lazy).
_LAZY = {
    "DataArguments": "hf_textgen.data.arguments",
    "bundled_corpus_files": "hf_textgen.data.loading",
    "expand_data_files": "hf_textgen.data.loading",
    "load_raw_datasets": "hf_textgen.data.loading",
    "group_texts": "hf_textgen.data.processing",
    "resolve_block_size": "hf_textgen.data.processing",
    "tokenize_and_group": "hf_textgen.data.processing",
    "tokenize_datasets": "hf_textgen.data.processing",
    "TOKENIZER_TYPES": "hf_textgen.data.arguments",
    "minimum_vocab_size": "hf_textgen.data.tokenizer_training",
    "train_tokenizer": "hf_textgen.data.tokenizer_training",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
