"""Exact match: the fraction of generated texts equal to their reference.

A local `evaluate` module shipped inside hf_textgen (the Hub's metric scripts cannot be fetched offline); load it
with `hf_textgen.evaluation.load_metric("exact_match")`. It scores sequence-to-sequence outputs, so by default the
comparison ignores only leading and trailing whitespace (a decoded target often differs from its reference in
nothing but a final newline).
"""

import datasets
import evaluate

_DESCRIPTION = "Exact match = number of predictions identical to their reference / number of predictions."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): Generated texts.
    references (list of str): Reference texts, one per prediction.
    strip (bool): Ignore leading and trailing whitespace (default True).
    ignore_case (bool): Compare case-insensitively (default False).

Returns:
    exact_match (float): Fraction of exact matches in [0, 1] (0 for no predictions).

Examples:
    >>> from hf_textgen.evaluation import load_metric
    >>> load_metric("exact_match").compute(predictions=["abc", "xy "], references=["abc", "xz"])
    {'exact_match': 0.5}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ExactMatch(evaluate.Metric):
    """Whole-string accuracy of generated texts."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
            ),
        )

    def _compute(self, predictions, references, strip=True, ignore_case=False):
        def normalise(text: str) -> str:
            text = text.strip() if strip else text
            return text.lower() if ignore_case else text

        matches = sum(normalise(p) == normalise(r) for p, r in zip(predictions, references))
        return {"exact_match": matches / len(predictions) if predictions else 0.0}
