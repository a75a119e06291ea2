"""Accuracy: the fraction of predictions equal to their reference label.

A local `evaluate` module shipped inside hf_textgen (the Hub's metric scripts cannot be fetched offline); load it
with `hf_textgen.evaluation.load_metric("accuracy")`.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = "Accuracy = number of correct predictions / number of predictions (optionally weighted)."

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of int): Predicted class ids.
    references (list of int): Reference class ids, one per prediction.
    normalize (bool): Return the fraction correct (default) instead of the count of correct predictions.
    sample_weight (list of float): Optional weight per example.

Returns:
    accuracy (float): Fraction correct in [0, 1], or the (weighted) count when `normalize=False`.

Examples:
    >>> from hf_textgen.evaluation import load_metric
    >>> load_metric("accuracy").compute(predictions=[0, 1, 1], references=[0, 1, 0])
    {'accuracy': 0.6666666666666666}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Accuracy(evaluate.Metric):
    """Classification accuracy over integer class ids."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, normalize=True, sample_weight=None):
        predictions = np.asarray(predictions)
        references = np.asarray(references)
        weights = np.ones(len(predictions)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        if len(weights) != len(predictions):
            raise ValueError(f"sample_weight has {len(weights)} entries for {len(predictions)} predictions")
        correct = float(np.sum(weights * (predictions == references)))
        if not normalize:
            return {"accuracy": correct}
        total = float(np.sum(weights))
        return {"accuracy": correct / total if total > 0 else 0.0}
