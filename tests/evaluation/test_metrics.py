"""The package's metric modules (accuracy, macro-F1, perplexity) against hand-computed values."""

import math

import pytest

from hf_textgen.evaluation import load_metric


@pytest.fixture(scope="module")
def accuracy():
    return load_metric("accuracy")


@pytest.fixture(scope="module")
def f1():
    return load_metric("f1")


@pytest.fixture(scope="module")
def perplexity():
    return load_metric("perplexity")


def test_accuracy(accuracy):
    assert accuracy.compute(predictions=[0, 1, 1, 2], references=[0, 1, 0, 0]) == {"accuracy": 0.5}
    assert accuracy.compute(predictions=[0, 1], references=[0, 1]) == {"accuracy": 1.0}
    weighted = accuracy.compute(predictions=[0, 1], references=[0, 0], sample_weight=[3.0, 1.0])
    assert weighted["accuracy"] == pytest.approx(0.75)
    assert accuracy.compute(predictions=[0, 1, 1], references=[0, 1, 0], normalize=False) == {"accuracy": 2.0}


def test_accuracy_accumulates_batches(accuracy):
    accuracy.add_batch(predictions=[0, 1], references=[0, 0])
    accuracy.add_batch(predictions=[2, 2], references=[2, 2])
    assert accuracy.compute() == {"accuracy": 0.75}


def test_f1_macro_is_unweighted_mean_of_per_class_f1(f1):
    predictions = [0, 1, 1, 2, 2, 2]
    references = [0, 1, 2, 2, 2, 0]
    # class 0: tp 1, predicted 1, actual 2 -> p 1, r 1/2 -> 2/3
    # class 1: tp 1, predicted 2, actual 1 -> p 1/2, r 1 -> 2/3
    # class 2: tp 2, predicted 3, actual 3 -> p 2/3, r 2/3 -> 2/3
    per_class = f1.compute(predictions=predictions, references=references, average=None)["f1"]
    assert per_class == pytest.approx([2 / 3, 2 / 3, 2 / 3])
    assert f1.compute(predictions=predictions, references=references)["f1"] == pytest.approx(2 / 3)


def test_f1_macro_punishes_ignoring_a_rare_class(f1):
    # Always predicting the majority class: accuracy 0.9 but the rare class scores 0.
    predictions = [0] * 10
    references = [0] * 9 + [1]
    majority_f1 = 2 * 0.9 * 1.0 / 1.9
    assert f1.compute(predictions=predictions, references=references)["f1"] == pytest.approx(majority_f1 / 2)
    assert f1.compute(predictions=predictions, references=references, average="micro")["f1"] == pytest.approx(0.9)
    weighted = f1.compute(predictions=predictions, references=references, average="weighted")["f1"]
    assert weighted == pytest.approx(0.9 * majority_f1)


def test_f1_binary_and_bad_average(f1):
    # positive class 1: tp 1, predicted 2, actual 1 -> p 1/2, r 1 -> 2/3
    assert f1.compute(predictions=[0, 1, 1, 0], references=[0, 1, 0, 0], average="binary")["f1"] == pytest.approx(
        2 / 3
    )
    with pytest.raises(ValueError, match="average"):
        f1.compute(predictions=[0], references=[0], average="samples")


def test_perplexity_sums_windows(perplexity):
    results = perplexity.compute(nll=[1.5, 4.5], num_tokens=[2, 4], num_words=3, num_bytes=24, num_characters=12)
    assert results["eval_loss"] == pytest.approx(1.0)
    assert results["perplexity"] == pytest.approx(math.e)
    assert results["num_tokens"] == 6
    assert results["word_perplexity"] == pytest.approx(math.exp(2.0))
    assert results["num_words"] == 3
    # lm-evaluation-harness: byte_perplexity = exp(NLL / bytes), bits_per_byte = NLL / bytes / ln 2.
    assert results["byte_perplexity"] == pytest.approx(math.exp(0.25))
    assert results["bits_per_byte"] == pytest.approx(0.25 / math.log(2))
    assert results["num_bytes"] == 24
    assert results["loss_per_character"] == pytest.approx(0.5)
    assert results["character_perplexity"] == pytest.approx(math.exp(0.5))


def test_perplexity_overflow_and_empty(perplexity):
    assert perplexity.compute(nll=[1e6], num_tokens=[1])["perplexity"] == math.inf
    with pytest.raises(ValueError, match="num_tokens"):
        perplexity.compute(nll=[0.0], num_tokens=[0])


def test_unknown_metric_names_the_available_ones():
    with pytest.raises(ValueError, match="accuracy"):
        load_metric("no_such_metric")
