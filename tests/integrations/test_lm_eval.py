"""lm-evaluation-harness 0.4 scores every family from a saved folder, as its README shows
(`simple_evaluate(model="hf", model_args="pretrained=DIR,trust_remote_code=True", ...)`), on local tasks built from
a few lines of the bundled corpus (no Hub).

Each log-likelihood lm-eval reports is checked against the same quantity computed here with the model directly,
tokenized as lm-eval documents it (the context's trailing space moves to the continuation; a causal model scores
the continuation tokens of `encode(context + continuation)`, an encoder-decoder reads the context and scores the
continuation as decoder labels).
"""

import json
import math

import lm_eval
import pytest
import torch
from lm_eval.tasks import TaskManager
from transformers import AutoTokenizer

from .families import tiny_model

_CHOICE_TASK = """
task: hf_textgen_tiny_choice
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{context}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{label}}}}"
metric_list:
  - metric: acc
"""

_PERPLEXITY_TASK = """
task: hf_textgen_tiny_perplexity
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data_file}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{{{text}}}}"
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
"""


@pytest.fixture(scope="module")
def tasks(tmp_path_factory, tiny_corpus_dir):
    """lm-eval's task manager with two local tasks: choose a line's true ending over another line's, and the rolling
    perplexity of lines."""
    folder = tmp_path_factory.mktemp("lm_eval_tasks")
    with open(f"{tiny_corpus_dir}/validation.txt", encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if len(line.split()) >= 6][:6]
    docs = []
    for index, line in enumerate(lines):
        words, other = line.split(), lines[(index + 1) % len(lines)].split()
        docs.append(
            {"context": " ".join(words[:3]), "choices": [" ".join(words[3:]), " ".join(other[3:])], "label": 0}
        )
    (folder / "choice.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
    (folder / "text.jsonl").write_text("".join(json.dumps({"text": line}) + "\n" for line in lines[:4]))
    (folder / "choice.yaml").write_text(_CHOICE_TASK.format(data_file=folder / "choice.jsonl"))
    (folder / "perplexity.yaml").write_text(_PERPLEXITY_TASK.format(data_file=folder / "text.jsonl"))
    # Built once: indexing lm-eval's thousands of bundled task files costs ~8 s of CPU each time.
    return TaskManager(include_path=str(folder))


def _log_probs(model, input_ids: list[int], targets: list[int], decoder_input_ids: list[int] | None = None) -> float:
    """Sum of log p(target) over the last `len(targets)` positions (causal) or the decoder positions."""
    with torch.no_grad():
        if decoder_input_ids is None:
            logits = model(input_ids=torch.tensor([input_ids])).logits[0, -len(targets) :]
        else:
            logits = model(
                input_ids=torch.tensor([input_ids]), decoder_input_ids=torch.tensor([decoder_input_ids])
            ).logits[0]
    return logits.float().log_softmax(-1).gather(1, torch.tensor(targets)[:, None]).sum().item()


def _reference_loglikelihood(model, tokenizer, context: str, continuation: str, seq2seq: bool) -> float:
    if seq2seq:
        targets = tokenizer.encode(continuation, add_special_tokens=False)
        decoder_inputs = [model.config.decoder_start_token_id, *targets[:-1]]
        return _log_probs(model, tokenizer.encode(context), targets, decoder_inputs)
    whole, context_ids = tokenizer.encode(context + continuation), tokenizer.encode(context)
    targets = whole[len(context_ids) :]
    return _log_probs(model, whole[:-1], targets)


@pytest.mark.parametrize("family", ["lstm", "transformer", "seq2seq"])
def test_simple_evaluate_scores_as_the_model_does(family, tasks, tmp_path, tiny_tokenizer_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    model = tiny_model(family, tokenizer)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    seq2seq = family == "seq2seq"
    task_names = ["hf_textgen_tiny_choice"] + ([] if seq2seq else ["hf_textgen_tiny_perplexity"])

    results = lm_eval.simple_evaluate(
        model="hf",
        # lm-eval recognises transformers' own model types only; any other encoder-decoder names its backend.
        model_args=f"pretrained={tmp_path},trust_remote_code=True,dtype=float32"
        + (",backend=seq2seq" if seq2seq else ""),
        tasks=task_names,
        task_manager=tasks,
        batch_size=2,
        device="cpu",
        log_samples=True,
    )

    samples = results["samples"]["hf_textgen_tiny_choice"]
    assert len(samples) == 6
    correct = []
    for sample in samples:
        doc = sample["doc"]
        scores = [response[0][0] for response in sample["resps"]]
        expected = [
            _reference_loglikelihood(model, tokenizer, doc["context"], " " + choice, seq2seq)
            for choice in doc["choices"]
        ]
        assert scores == pytest.approx(expected, abs=1e-3), (family, doc)
        correct.append(float(max(range(len(expected)), key=expected.__getitem__) == doc["label"]))
    assert results["results"]["hf_textgen_tiny_choice"]["acc,none"] == pytest.approx(sum(correct) / len(correct))

    if not seq2seq:
        # Rolling log-likelihood of a short text: one window, the prefix token (BOS) first.
        total_loglikelihood, total_words = 0.0, 0
        for sample in results["samples"]["hf_textgen_tiny_perplexity"]:
            text = sample["doc"]["text"]
            tokens = tokenizer.encode(text)
            loglikelihood = _log_probs(model, [tokenizer.bos_token_id, *tokens[:-1]], tokens)
            assert sample["resps"][0][0] == pytest.approx(loglikelihood, abs=1e-3), (family, text)
            total_loglikelihood += loglikelihood
            total_words += len(text.split())
        word_perplexity = results["results"]["hf_textgen_tiny_perplexity"]["word_perplexity,none"]
        assert word_perplexity == pytest.approx(math.exp(-total_loglikelihood / total_words), rel=1e-4)
