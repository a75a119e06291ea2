"""The data pipeline shared by every command: load raw text, tokenize and pack it, and train tokenizers."""

from hf_textgen.data.arguments import DataArguments
from hf_textgen.data.loading import bundled_corpus_files, expand_data_files, load_raw_datasets
from hf_textgen.data.processing import group_texts, resolve_block_size, tokenize_and_group, tokenize_datasets
from hf_textgen.data.tokenizer_training import TOKENIZER_TYPES, minimum_vocab_size, train_tokenizer

__all__ = [
    "TOKENIZER_TYPES",
    "DataArguments",
    "bundled_corpus_files",
    "expand_data_files",
    "group_texts",
    "load_raw_datasets",
    "minimum_vocab_size",
    "resolve_block_size",
    "tokenize_and_group",
    "tokenize_datasets",
    "train_tokenizer",
]
