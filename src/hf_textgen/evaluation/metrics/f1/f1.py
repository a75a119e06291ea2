"""F1 score (macro-averaged by default) over integer class ids.

A local `evaluate` module shipped inside hf_textgen; load it with `hf_textgen.evaluation.load_metric("f1")`.
Macro F1 is the unweighted mean of the per-class F1 scores, so rare classes count as much as common ones.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "F1 = 2 * precision * recall / (precision + recall), per class, then averaged."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): Predicted class ids.
    references (list of int): Reference class ids, one per prediction.
    average (str): "macro" (default: unweighted mean over classes), "micro" (from the pooled counts),
        "weighted" (mean weighted by each class's number of references), "binary" (F1 of `pos_label` only)
        or None (one F1 per class, as a list ordered by `labels`).
    labels (list of int): The classes to score; default: every class seen in predictions or references.
    pos_label (int): The positive class for `average="binary"` (default 1).

Returns:
    f1 (float or list of float): A class with no predictions and no references is not scored; a class
        whose precision and recall are both zero scores 0.

Examples:
    >>> from hf_textgen.evaluation import load_metric
    >>> load_metric("f1").compute(predictions=[0, 1, 1, 2], references=[0, 1, 2, 2])
    {'f1': 0.7777777777777777}
"""

_AVERAGES = ("macro", "micro", "weighted", "binary", None)


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    # 0/0 -> 0, the usual convention for a class that was never predicted (or never present).
    return np.divide(numerator, denominator, out=np.zeros_like(numerator, dtype=float), where=denominator > 0)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class F1(evaluate.Metric):
    """F1 score over integer class ids; macro average by default."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average="macro", labels=None, pos_label=1):
        if average not in _AVERAGES:
            raise ValueError(f"average={average!r} is not one of {_AVERAGES}")
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        if average == "binary":
            labels = [pos_label]
        elif labels is None:
            labels = sorted(set(predictions.tolist()) | set(references.tolist()))
        labels = np.asarray(labels)
        # Per-class counts: (num_labels,)
        true_positives = np.array([np.sum((predictions == c) & (references == c)) for c in labels], dtype=float)
        predicted = np.array([np.sum(predictions == c) for c in labels], dtype=float)
        actual = np.array([np.sum(references == c) for c in labels], dtype=float)
        if average == "micro":
            precision = _safe_divide(true_positives.sum(), predicted.sum())
            recall = _safe_divide(true_positives.sum(), actual.sum())
            return {"f1": float(_safe_divide(2 * precision * recall, precision + recall))}
        precision = _safe_divide(true_positives, predicted)
        recall = _safe_divide(true_positives, actual)
        per_class = _safe_divide(2 * precision * recall, precision + recall)
        if average is None:
            return {"f1": per_class.tolist()}
        if average == "weighted":
            return {"f1": float(np.sum(per_class * actual) / actual.sum()) if actual.sum() > 0 else 0.0}
        return {"f1": float(per_class.mean()) if len(per_class) else 0.0}
