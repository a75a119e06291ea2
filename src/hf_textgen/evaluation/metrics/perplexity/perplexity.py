"""Perplexity from summed negative log-likelihoods: per token, and per word, byte and character when counts are given.

A local `evaluate` module shipped inside hf_textgen; load it with `hf_textgen.evaluation.load_metric("perplexity")`.
Unlike the Hub's `perplexity` measurement it does not run a model itself: the caller (`hf-textgen evaluate`, a
Trainer loop) adds one `(nll, num_tokens)` pair per scored window, so the model, the windowing and the device stay
the caller's business and the sums are exact however the text was split.
"""

import math

import datasets
import evaluate

from hf_textgen.evaluation.perplexity import perplexity as _exp

_DESCRIPTION = (
    "Perplexity = exp(total negative log-likelihood / number of scored tokens). "
    "Word perplexity = exp(total NLL / number of words), byte perplexity = exp(total NLL / number of UTF-8 bytes) "
    "and bits per byte = total NLL / (number of bytes * ln 2): comparable across tokenizers, with the names and "
    "definitions of lm-evaluation-harness."
)

_KWARGS_DESCRIPTION = """
Args:
    nll (list of float): Summed negative log-likelihood (natural log) of the tokens scored in each window.
    num_tokens (list of int): Number of tokens scored in each window.
    num_words (int): Optional number of words in the evaluated text; adds `word_perplexity`.
    num_bytes (int): Optional number of UTF-8 bytes in the evaluated text; adds `byte_perplexity` and
        `bits_per_byte`.
    num_characters (int): Optional number of characters in the evaluated text; adds `character_perplexity` and
        `loss_per_character` (NLL per character, comparable with character-level models).

Returns:
    eval_loss (float): Mean NLL per token.
    perplexity (float): exp(eval_loss).
    num_tokens (int): Total scored tokens.
    word_perplexity (float), num_words (int): When `num_words` is given.
    byte_perplexity (float), bits_per_byte (float), num_bytes (int): When `num_bytes` is given.
    character_perplexity (float), loss_per_character (float), num_characters (int): When `num_characters` is
        given.

Examples:
    >>> from hf_textgen.evaluation import load_metric
    >>> load_metric("perplexity").compute(nll=[2.0, 4.0], num_tokens=[2, 4])["perplexity"]
    2.718281828459045
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Perplexity(evaluate.Metric):
    """Token-, word-, byte- and character-level perplexity from summed NLLs."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"nll": datasets.Value("float64"), "num_tokens": datasets.Value("int64")}),
        )

    def _compute(self, nll, num_tokens, num_words=None, num_bytes=None, num_characters=None):
        total_nll = math.fsum(nll)
        total_tokens = int(sum(num_tokens))
        if total_tokens <= 0:
            raise ValueError("num_tokens sums to 0: nothing was scored")
        eval_loss = total_nll / total_tokens
        results = {"eval_loss": eval_loss, "perplexity": _exp(eval_loss), "num_tokens": total_tokens}
        if num_words is not None:
            if num_words <= 0:
                raise ValueError(f"num_words must be positive, got {num_words}")
            results["word_perplexity"] = _exp(total_nll / num_words)
            results["num_words"] = int(num_words)
        if num_bytes is not None:
            if num_bytes <= 0:
                raise ValueError(f"num_bytes must be positive, got {num_bytes}")
            results["byte_perplexity"] = _exp(total_nll / num_bytes)
            results["bits_per_byte"] = total_nll / num_bytes / math.log(2)
            results["num_bytes"] = int(num_bytes)
        if num_characters is not None:
            if num_characters <= 0:
                raise ValueError(f"num_characters must be positive, got {num_characters}")
            results["character_perplexity"] = _exp(total_nll / num_characters)
            results["loss_per_character"] = total_nll / num_characters
            results["num_characters"] = int(num_characters)
        return results
