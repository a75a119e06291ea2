"""The seq2seq metric modules (exact match, sacreBLEU) against hand-computed values and the sacrebleu library."""

import pytest

from hf_textgen.evaluation import load_metric


@pytest.fixture(scope="module")
def exact_match():
    return load_metric("exact_match")


@pytest.fixture(scope="module")
def sacrebleu_metric():
    pytest.importorskip("sacrebleu")
    return load_metric("sacrebleu")


def test_exact_match_counts_whole_strings(exact_match):
    predictions = ["abc", "abd", " xyz\n", "Hello"]
    references = ["abc", "abc", "xyz", "hello"]
    assert exact_match.compute(predictions=predictions, references=references) == {"exact_match": 0.5}
    assert exact_match.compute(predictions=predictions, references=references, ignore_case=True) == {
        "exact_match": 0.75
    }
    assert exact_match.compute(predictions=predictions, references=references, strip=False) == {"exact_match": 0.25}


def test_exact_match_accumulates_batches(exact_match):
    exact_match.add_batch(predictions=["a", "b"], references=["a", "c"])
    exact_match.add_batch(predictions=["d"], references=["d"])
    assert exact_match.compute()["exact_match"] == pytest.approx(2 / 3)


def test_sacrebleu_perfect_and_disjoint(sacrebleu_metric):
    perfect = sacrebleu_metric.compute(predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])
    assert perfect["bleu"] == pytest.approx(100.0)
    assert perfect["brevity_penalty"] == 1.0
    disjoint = sacrebleu_metric.compute(predictions=["xx yy zz ww"], references=["the cat sat on the mat"])
    assert disjoint["bleu"] == pytest.approx(0.0, abs=1e-6)


def test_sacrebleu_matches_the_library_with_one_or_several_references(sacrebleu_metric):
    import sacrebleu

    predictions = ["the cat is on the mat", "a dog barks loudly today"]
    first = ["the cat sat on the mat", "a dog barks today"]
    second = ["there is a cat on the mat", "the dog barks loudly"]
    single = sacrebleu_metric.compute(predictions=predictions, references=first)
    assert single["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [first]).score)
    several = sacrebleu_metric.compute(predictions=predictions, references=[list(pair) for pair in zip(first, second)])
    assert several["bleu"] == pytest.approx(sacrebleu.corpus_bleu(predictions, [first, second]).score)
    assert several["bleu"] >= single["bleu"]  # an extra reference can only add matches


def test_sacrebleu_rejects_uneven_reference_counts(sacrebleu_metric):
    with pytest.raises(ValueError, match="same number of references"):
        sacrebleu_metric.compute(predictions=["a b", "c d"], references=[["a b"], ["c d", "c e"]])
