"""How words, bytes and characters of a text are counted, for metrics that compare across tokenizers.

Per-token perplexity depends on the tokenizer; the same total negative log-likelihood divided by a count of the
text itself does not. The counts follow lm-evaluation-harness's `wikitext` task (`lm_eval/tasks/wikitext/
preprocess_wikitext.py`), so our figures and `lm_eval`'s can be compared number for number:

- words: `len(re.split(r"\\s+", document))` per document, i.e. the pieces between runs of whitespace. A document
  that starts or ends with whitespace counts one more piece at that end (as lm-eval does on WikiText's pages,
  which start with `" = Title = "` and end with `"\\n"`).
- bytes: `len(document.encode("utf-8"))`.
- characters: `len(document)` (Unicode code points).

Words only mean something where spaces separate them. In Chinese, Japanese, Thai and similar scripts a "word" by
whitespace is a whole sentence or paragraph, and a word perplexity would be astronomically large and meaningless;
`spaced_words` tells such text apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from hf_textgen.evaluation.perplexity import perplexity

_WHITESPACE = re.compile(r"\s+")
_LETTER = re.compile(r"[^\W\d_]")
# Scripts written without spaces between words: Thai, Lao, Myanmar, Khmer, Japanese kana, CJK ideographs.
_UNSPACED_LETTER = re.compile(
    "[\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]"
)
# Above this share of letters in unspaced scripts, whitespace no longer counts words.
MAX_UNSPACED_SHARE = 0.5


def count_words(document: str) -> int:
    """Words as lm-evaluation-harness's `wikitext` task counts them: `len(re.split(r"\\s+", document))`."""
    return len(_WHITESPACE.split(document))


def count_bytes(document: str) -> int:
    """UTF-8 bytes of the document."""
    return len(document.encode("utf-8"))


def unspaced_share(texts: Iterable[str]) -> float:
    """The share of letters that belong to scripts written without spaces (0 when there are no letters)."""
    letters = unspaced = 0
    for text in texts:
        letters += sum(1 for _ in _LETTER.finditer(text))
        unspaced += sum(1 for _ in _UNSPACED_LETTER.finditer(text))
    return unspaced / letters if letters else 0.0


@dataclass(frozen=True)
class TextUnits:
    """Counts of one text, for turning a per-token loss into per-word, per-byte and per-character figures.

    Attributes:
        num_tokens: Tokens the text tokenizes to (as scored, e.g. with one EOS per document).
        num_words: Words (`count_words`), or None where the text is not in space-separated words.
        num_bytes: UTF-8 bytes.
        num_characters: Characters.
        unspaced_share: Share of letters in scripts written without spaces (see `unspaced_share`).
    """

    num_tokens: int
    num_words: int | None
    num_bytes: int
    num_characters: int
    unspaced_share: float = 0.0

    @classmethod
    def of(cls, documents: list[str], num_tokens: int) -> TextUnits:
        """Count the documents; `num_words` is None when most letters are in unspaced scripts."""
        share = unspaced_share(documents)
        return cls(
            num_tokens=num_tokens,
            num_words=sum(map(count_words, documents)) if share <= MAX_UNSPACED_SHARE else None,
            num_bytes=sum(map(count_bytes, documents)),
            num_characters=sum(map(len, documents)),
            unspaced_share=share,
        )

    def word_note(self) -> str | None:
        """The one-line reason word perplexity is left out, or None when it is reported."""
        if self.num_words is not None:
            return None
        return (
            f"word_perplexity left out: {self.unspaced_share:.0%} of the letters are in scripts written without "
            "spaces between words (Chinese, Japanese, Thai, ...), so spaces do not count words; compare "
            "bits_per_byte instead"
        )

    def metrics_from_loss(self, loss: float, prefix: str = "") -> dict[str, float]:
        """Per-word, per-byte figures from a mean per-token loss over text with these proportions.

        `loss * num_tokens` estimates the total NLL of the text, so `bits_per_byte = loss * num_tokens /
        (num_bytes * ln 2)`, as lm-evaluation-harness defines it; `word_perplexity` only where words are counted.
        """
        total = loss * self.num_tokens
        metrics = {
            f"{prefix}byte_perplexity": perplexity(total / self.num_bytes),
            f"{prefix}bits_per_byte": total / self.num_bytes / math.log(2),
        }
        if self.num_words:
            metrics[f"{prefix}word_perplexity"] = perplexity(total / self.num_words)
        return metrics


def sample_text_units(documents: Iterable[str], tokenizer, max_characters: int = 2_000_000) -> TextUnits | None:
    """`TextUnits` of the first documents (up to about `max_characters`), tokenized as the training data is.

    Each document counts its tokens plus one EOS, as `hf_textgen.data.tokenize_and_group` packs them, so the
    proportions match the blocks a Trainer evaluates. A sample suffices: only the ratios are used.

    Returns:
        The counts, or None when there is no text.
    """
    sample: list[str] = []
    characters = 0
    for document in documents:
        if document:
            sample.append(document)
            characters += len(document)
        if characters >= max_characters:
            break
    if not sample:
        return None
    token_lists = tokenizer(sample, add_special_tokens=False, verbose=False)["input_ids"]
    eos = 0 if tokenizer.eos_token_id is None else 1
    return TextUnits.of(sample, num_tokens=sum(len(ids) + eos for ids in token_lists))
