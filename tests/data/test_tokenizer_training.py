"""train_tokenizer: exact round trips, compression at a 4,000-token vocabulary, char and word types, bad sizes."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from hf_textgen.data import bundled_corpus_files, minimum_vocab_size, train_tokenizer
from hf_textgen.data.tokenizer_training import EmptyCorpusError

FIXTURES = Path(__file__).parent / "fixtures"

# Text none of the training corpora contain: modern English, Chinese written for this test, and a mix with
# emoji, odd whitespace and characters from other scripts.
UNSEEN_ENGLISH = (
    "The committee published its quarterly report on Tuesday, noting that broadband subscriptions rose 12.5% "
    "while the average download speed doubled.\nResearchers can't yet explain why.\n"
)
UNSEEN_CHINESE = "昨天下午，我们在实验室里测试了新的机器人。它会自己识别颜色，还能把积木整齐地放进盒子里。"
UNSEEN_MIXED = (
    "Café déjà vu — naïve résumé 😀👩‍💻 façade\t\ttabs\r\nwindows line\u00a0nbsp \u200b zero-width "
    "混合 text with 中文 and Ελληνικά, русский, العربية, हिन्दी  \n\n\n  trailing spaces   "
)


def _paragraphs(path: str) -> list[str]:
    return Path(path).read_text(encoding="utf-8").split("\n\n")


def _chars_per_token(tokenizer, texts: list[str]) -> float:
    num_tokens = sum(map(len, tokenizer(texts, add_special_tokens=False)["input_ids"]))
    return sum(map(len, texts)) / num_tokens


@pytest.fixture(scope="module")
def english_bpe():
    """Byte-level BPE with a 4,000-token vocabulary trained on the bundled training text."""
    return train_tokenizer(iter(_paragraphs(bundled_corpus_files()["train"])), "bpe", vocab_size=4000)


@pytest.fixture(scope="module")
def chinese_paragraphs() -> list[str]:
    return [text for text in _paragraphs(FIXTURES / "chinese.txt") if text.strip()]


def test_bpe_round_trips_any_unicode_exactly(english_bpe):
    for text in (UNSEEN_ENGLISH, UNSEEN_CHINESE, UNSEEN_MIXED, "", " ", "\n", "  leading", "<s> literal </s>"):
        ids = english_bpe(text, add_special_tokens=False)["input_ids"]
        assert english_bpe.decode(ids) == text
    # No BOS/EOS added behind the user's back: the data pipeline places EOS itself.
    assert english_bpe("hello")["input_ids"] == english_bpe("hello", add_special_tokens=False)["input_ids"]
    # Chinese the English tokenizer never saw falls back to bytes, never to <unk>.
    assert english_bpe.unk_token is None


def test_bpe_english_compression_at_4000(english_bpe):
    # The validation play is not in the training text.
    validation = _paragraphs(bundled_corpus_files()["validation"])
    assert _chars_per_token(english_bpe, validation) >= 3.0
    assert len(english_bpe) == 4000


def test_bpe_chinese_round_trip_and_compression(chinese_paragraphs):
    held_out = chinese_paragraphs[-5:]
    tokenizer = train_tokenizer(iter(chinese_paragraphs[:-5]), "bpe", vocab_size=4000, min_frequency=1)
    for text in [*held_out, UNSEEN_CHINESE, UNSEEN_MIXED]:
        assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    # Trained on ~3,600 characters of Chinese (min_frequency=1: the corpus is tiny), the held-out paragraphs
    # come out at about one character per token or better: frequent characters and words are single tokens,
    # characters never seen cost up to three byte tokens.
    assert _chars_per_token(tokenizer, held_out) >= 1.0


def test_saved_folder_loads_as_fast_tokenizer(tmp_path, english_bpe):
    english_bpe.save_pretrained(str(tmp_path))
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert isinstance(loaded, PreTrainedTokenizerFast)
    assert (loaded.pad_token, loaded.bos_token, loaded.eos_token) == ("<pad>", "<s>", "</s>")
    assert loaded.clean_up_tokenization_spaces is False
    ids = loaded(UNSEEN_MIXED)["input_ids"]
    assert ids == english_bpe(UNSEEN_MIXED)["input_ids"]
    assert loaded.decode(ids) == UNSEEN_MIXED
    assert loaded.decode([loaded.eos_token_id, *ids], skip_special_tokens=True) == UNSEEN_MIXED


def test_char_tokenizer_one_token_per_character():
    training = ["First Citizen:\nBefore we proceed any further, hear me speak.\n", "All:\nSpeak, speak.\n"]
    tokenizer = train_tokenizer(iter(training), "char", vocab_size=None, min_frequency=1)
    characters = set("".join(training))
    assert len(tokenizer) == len(characters) + 4  # + <pad> <s> </s> <unk>
    text = "hear me, Citizen\n"
    ids = tokenizer(text)["input_ids"]
    assert len(ids) == len(text)
    assert tokenizer.decode(ids) == text
    # A character never seen becomes <unk>.
    assert tokenizer("Z")["input_ids"] == [tokenizer.unk_token_id]


def test_word_tokenizer_with_unk():
    training = ["the cat sat on the mat .\n", "the dog sat on the log , and the cat ran .\n"] * 2
    tokenizer = train_tokenizer(iter(training), "word", vocab_size=100, min_frequency=2)
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("the cat sat, on a zebra.")["input_ids"])
    assert tokens == ["the", "cat", "sat", ",", "on", "<unk>", "<unk>", "."]
    assert tokenizer.unk_token == "<unk>"
    assert tokenizer("the cat\nsat")["input_ids"][2] == tokenizer.convert_tokens_to_ids("\n")
    # vocab_size caps the vocabulary (special tokens included).
    small = train_tokenizer(iter(training), "word", vocab_size=7, min_frequency=1)
    assert len(small) == 7


@pytest.mark.parametrize(("tokenizer_type", "vocab_size"), [("bpe", 258), ("word", 4), ("char", 2)])
def test_vocab_too_small_is_a_clear_error(tokenizer_type, vocab_size):
    assert vocab_size < minimum_vocab_size(tokenizer_type)
    with pytest.raises(ValueError, match=f"vocab_size {vocab_size} is too small.*{tokenizer_type}"):
        train_tokenizer(iter(["some text"]), tokenizer_type, vocab_size=vocab_size)


def test_bad_arguments_and_empty_corpus():
    with pytest.raises(ValueError, match="tokenizer_type must be one of"):
        train_tokenizer(iter(["x"]), "unigram")
    with pytest.raises(ValueError, match="min_frequency"):
        train_tokenizer(iter(["x"]), "bpe", min_frequency=0)
    with pytest.raises(EmptyCorpusError, match="empty"):
        train_tokenizer(iter(["", ""]), "bpe", vocab_size=300)


def test_training_from_a_generator_reads_it_once():
    consumed = []

    def lines():
        for index in range(200):
            consumed.append(index)
            yield f"line number {index} of a corpus that arrives one line at a time\n"

    tokenizer = train_tokenizer(lines(), "bpe", vocab_size=300)
    assert consumed == list(range(200))
    assert len(tokenizer) <= 300
