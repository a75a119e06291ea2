"""The shared fixtures other test files build on."""

import os

from transformers import PreTrainedTokenizerFast


def test_environment_is_offline_and_private():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["HF_DATASETS_OFFLINE"] == "1"
    home = os.path.expanduser("~")
    assert not os.environ["HF_DATASETS_CACHE"].startswith(os.path.join(home, ".cache"))


def test_tiny_corpus_dir(tiny_corpus_dir):
    for name, (low, high) in {"train.txt": (4_000, 8_000), "validation.txt": (1_000, 2_000)}.items():
        with open(os.path.join(tiny_corpus_dir, name), encoding="utf-8") as handle:
            size = len(handle.read())
        assert low <= size <= high


def test_tiny_tokenizer(tiny_tokenizer, tiny_tokenizer_path):
    assert isinstance(tiny_tokenizer, PreTrainedTokenizerFast)
    assert len(tiny_tokenizer) == 512
    assert (tiny_tokenizer.pad_token_id, tiny_tokenizer.bos_token_id, tiny_tokenizer.eos_token_id) == (0, 1, 2)
    text = "To be, or not to be: 你好 😀\n"
    assert tiny_tokenizer.decode(tiny_tokenizer(text)["input_ids"]) == text
    assert os.path.isfile(os.path.join(tiny_tokenizer_path, "tokenizer.json"))
