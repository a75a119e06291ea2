"""The data pipeline shared by every command: load raw text, tokenize and pack it, and train tokenizers."""

from __future__ import annotations

import importlib

# name -> the module that defines it: imported on first use, so that importing one light module of this
# package (e.g. its argument dataclasses, for `hf-textgen <command> --help`) does not import all of it.
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


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})
