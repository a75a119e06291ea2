"""Train a tokenizer with the `tokenizers` library and wrap it as a `PreTrainedTokenizerFast`.

Three vocabularies, all trained from an iterator of strings so a large corpus is never one string in memory:

- `bpe`: byte-level BPE (GPT-2's byte mapping, GPT-4-style word split). Every Unicode string maps to bytes and
  back, so `decode(encode(x)) == x` exactly, Chinese and emoji included. No normaliser, no prefix space, no
  whitespace clean-up on decode.
- `char`: one token per Unicode character, as nanoGPT's `shakespeare_char`; characters never seen in training
  become `<unk>`.
- `word`: word-level with `<unk>`, for the classic word-level WikiText setups. Words are runs of word characters,
  single punctuation marks and line breaks; decoding joins tokens with single spaces, so whitespace is not
  restored exactly (that is the nature of a word vocabulary).

No special token is added automatically when encoding: the data pipeline inserts EOS between documents itself.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from hf_textgen.data.arguments import DEFAULT_VOCAB_SIZES, TOKENIZER_TYPES

PAD_TOKEN = "<pad>"
BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
UNK_TOKEN = "<unk>"

# Byte-level BPE needs no unknown token: every byte is in the base alphabet.
_SPECIAL_TOKENS = {
    "bpe": [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN],
    "char": [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN],
    "word": [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN],
}
_BYTE_ALPHABET_SIZE = 256


class EmptyCorpusError(ValueError):
    """The text iterator yielded no text at all."""


# Pre-split for byte-level BPE, in the style of the GPT-4 / Llama-3 patterns: English contractions; a word with at
# most one leading space or punctuation mark; numbers in groups of up to three digits; punctuation runs that take
# the line breaks after them (",\n" is one piece, which matters for verse); runs of line breaks; other whitespace.
# Compared with GPT-2's pattern this gains ~4% characters per token on the bundled corpus at a 4,000 vocabulary.
_BPE_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
# Words, single punctuation marks and line breaks; other whitespace only separates.
_WORD_PATTERN = r"\w+|[^\w\s]|\n"


def minimum_vocab_size(tokenizer_type: str) -> int:
    """The smallest `vocab_size` that makes sense for `tokenizer_type` (special tokens included)."""
    _check_type(tokenizer_type)
    specials = len(_SPECIAL_TOKENS[tokenizer_type])
    if tokenizer_type == "bpe":
        return _BYTE_ALPHABET_SIZE + specials
    return specials + 1


def _check_type(tokenizer_type: str) -> None:
    if tokenizer_type not in TOKENIZER_TYPES:
        raise ValueError(f"tokenizer_type must be one of {', '.join(TOKENIZER_TYPES)}, got {tokenizer_type!r}")


def _build_backend(tokenizer_type: str, vocab_size: int | None, min_frequency: int):
    """The untrained `tokenizers.Tokenizer` and its trainer for one tokenizer type."""
    specials = _SPECIAL_TOKENS[tokenizer_type]
    if tokenizer_type == "bpe":
        tokenizer = Tokenizer(models.BPE())
        # Split into words first so merges never cross word boundaries ("isolated" keeps every character, so the
        # split is lossless), then map bytes to printable symbols without GPT-2's own split.
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(Regex(_BPE_SPLIT_PATTERN), behavior="isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=specials,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
    elif tokenizer_type == "char":
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
        # Every character (newline included) is its own piece; Fuse concatenates them back on decode.
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(
            # No size given: keep every character seen (nanoGPT's shakespeare_char keeps all 65).
            vocab_size=vocab_size if vocab_size is not None else 1 << 30,
            min_frequency=min_frequency,
            special_tokens=specials,
            show_progress=False,
        )
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token=UNK_TOKEN))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(_WORD_PATTERN), behavior="removed", invert=True)
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials, show_progress=False
        )
    return tokenizer, trainer


def train_tokenizer(
    text_iterator: Iterable[str | list[str]],
    tokenizer_type: str = "bpe",
    vocab_size: int | None = None,
    min_frequency: int = 2,
    model_max_length: int | None = None,
) -> PreTrainedTokenizerFast:
    """Train a tokenizer from an iterator of texts and return it as a `PreTrainedTokenizerFast`.

    Args:
        text_iterator: Texts to learn from (lines, paragraphs or documents), or lists of them (batches are
            faster). Consumed once, lazily.
        tokenizer_type: `"bpe"` (byte-level BPE), `"char"` (one token per character) or `"word"` (word-level).
        vocab_size: Target vocabulary size, special tokens included; `None` takes `DEFAULT_VOCAB_SIZES` (bpe 8000,
            word 32000, char every character seen).
        min_frequency: Drop merges (bpe) or words/characters (word/char) seen fewer times than this.
        model_max_length: Recorded on the tokenizer (e.g. the model's context length); `None` leaves it unset.

    Returns:
        The trained tokenizer with `bos_token` `<s>`, `eos_token` `</s>`, `pad_token` `<pad>` and, for `char` and
        `word`, `unk_token` `<unk>`. `save_pretrained` writes a folder that `AutoTokenizer` loads.

    Raises:
        ValueError: Unknown `tokenizer_type`, a `vocab_size` too small for the type, or `min_frequency < 1`.
        EmptyCorpusError: The iterator held no text at all (a `ValueError`).
    """
    _check_type(tokenizer_type)
    if vocab_size is None:
        vocab_size = DEFAULT_VOCAB_SIZES[tokenizer_type]
    minimum = minimum_vocab_size(tokenizer_type)
    if vocab_size is not None and vocab_size < minimum:
        detail = " (256 bytes + special tokens)" if tokenizer_type == "bpe" else " (special tokens + 1)"
        raise ValueError(
            f"vocab_size {vocab_size} is too small for tokenizer_type {tokenizer_type!r}: it needs at least "
            f"{minimum}{detail}"
        )
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")

    seen_text = False

    def texts() -> Iterator[str | list[str]]:
        nonlocal seen_text
        for text in text_iterator:
            if text:
                seen_text = True
                yield text

    backend, trainer = _build_backend(tokenizer_type, vocab_size, min_frequency)
    backend.train_from_iterator(texts(), trainer=trainer)
    if not seen_text:
        raise EmptyCorpusError("no text to train the tokenizer on: the corpus is empty")

    special = {"bos_token": BOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    if UNK_TOKEN in _SPECIAL_TOKENS[tokenizer_type]:
        special["unk_token"] = UNK_TOKEN
    kwargs = {"model_max_length": model_max_length} if model_max_length is not None else {}
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        clean_up_tokenization_spaces=False,  # the default clean-up would drop spaces before punctuation
        add_bos_token=False,
        add_eos_token=False,
        **special,
        **kwargs,
    )


def save_tokenizer(tokenizer, folder: str | os.PathLike) -> None:
    """`tokenizer.save_pretrained(folder)`, then `add_bos_token` / `add_eos_token` in `tokenizer_config.json`.

    transformers 5 keeps whether BOS/EOS are added in `tokenizer.json`'s post-processor and drops the two flags from
    `tokenizer_config.json` when saving. Tools that read only the config (llama.cpp's converter, for one) then assume
    Llama's default of a leading BOS, and their prompts are not the ones the model was trained on. The flags are
    written as the tokenizer actually behaves (a probe encoding); transformers ignores them when it loads a folder
    that has `tokenizer.json`, so they change nothing there.
    """
    tokenizer.save_pretrained(str(folder))
    record_special_token_flags(tokenizer, folder)


def record_special_token_flags(tokenizer, folder: str | os.PathLike) -> None:
    """Write `add_bos_token` / `add_eos_token` into `folder/tokenizer_config.json` (see `save_tokenizer`)."""
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    config_file = Path(folder) / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["add_bos_token"] = tokenizer.bos_token_id is not None and probe[:1] == [tokenizer.bos_token_id]
    config["add_eos_token"] = tokenizer.eos_token_id is not None and probe[-1:] == [tokenizer.eos_token_id]
    config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
