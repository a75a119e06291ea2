"""sacreBLEU: corpus BLEU with standard tokenisation, through the `sacrebleu` library.

A local `evaluate` module shipped inside hf_textgen; load it with `hf_textgen.evaluation.load_metric("sacrebleu")`.
It needs the `sacrebleu` package (`pip install "hf_textgen[seq2seq]"`). Scores are on sacreBLEU's 0-100 scale.
"""

import datasets
import evaluate

_DESCRIPTION = "Corpus-level BLEU (Papineni et al., 2002) as computed by sacreBLEU (Post, 2018)."

_CITATION = """\
@inproceedings{post-2018-call,
    title = "A Call for Clarity in Reporting {BLEU} Scores",
    author = "Post, Matt",
    booktitle = "Proceedings of the Third Conference on Machine Translation: Research Papers",
    year = "2018",
    pages = "186--191",
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of str): Generated texts.
    references (list of str, or list of list of str): One reference per prediction, or several (every
        prediction must then have the same number of references).
    tokenize (str): sacreBLEU tokeniser: "13a" (default, WMT standard), "char", "none", "intl", "zh", ...
    lowercase (bool): Lowercase before scoring (default False).
    smooth_method (str): "exp" (default), "floor", "add-k" or "none".

Returns:
    bleu (float): Corpus BLEU in [0, 100].
    precisions (list of float): The 1- to 4-gram precisions, in percent.
    brevity_penalty (float): The brevity penalty applied.
    sys_len (int), ref_len (int): Token counts of the predictions and of the closest references.

Examples:
    >>> from hf_textgen.evaluation import load_metric
    >>> load_metric("sacrebleu").compute(predictions=["the cat sat on the mat"],
    ...                                  references=["the cat sat on the mat"])["bleu"]
    100.00000000000004
"""


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError as error:  # an optional dependency: only seq2seq evaluation needs it
        raise ImportError(
            'the sacrebleu metric needs the sacrebleu package: pip install "hf_textgen[seq2seq]"'
        ) from error
    return sacrebleu


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Sacrebleu(evaluate.Metric):
    """Corpus BLEU of generated texts against one or more references each."""

    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features(
                    {
                        "predictions": datasets.Value("string"),
                        "references": datasets.Sequence(datasets.Value("string")),
                    }
                ),
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
            ],
        )

    def _compute(self, predictions, references, tokenize="13a", lowercase=False, smooth_method="exp"):
        references = [[reference] if isinstance(reference, str) else list(reference) for reference in references]
        counts = {len(reference_set) for reference_set in references}
        if len(counts) > 1:
            raise ValueError("every prediction needs the same number of references for sacreBLEU")
        # sacreBLEU wants one stream per reference position: [[ref 1 of each prediction], [ref 2 of each], ...].
        streams = [list(stream) for stream in zip(*references)]
        score = _sacrebleu().corpus_bleu(
            predictions, streams, tokenize=tokenize, lowercase=lowercase, smooth_method=smooth_method
        )
        return {
            "bleu": score.score,
            "precisions": list(score.precisions),
            "brevity_penalty": score.bp,
            "sys_len": score.sys_len,
            "ref_len": score.ref_len,
        }
