"""The Trainer's evaluations report bits per byte and byte/word perplexity next to the loss (lm-eval's names)."""

import json
import logging
import math
import re

import pytest
from datasets import Dataset, DatasetDict

from hf_textgen import TransformerConfig, cli
from hf_textgen.data import DataArguments, load_raw_datasets
from hf_textgen.training.pretrain import CausalLMTask


def test_pretrain_reports_bits_per_byte(tmp_path, tiny_corpus_dir, tiny_tokenizer, tiny_tokenizer_path, capsys):
    validation = f"{tiny_corpus_dir}/validation.txt"
    argv = ["pretrain", "--output_dir", str(tmp_path / "out"), "--model_type", "rnn"]
    argv += ["--config_overrides", "hidden_size=32,num_hidden_layers=1", "--tokenizer_name", tiny_tokenizer_path]
    argv += ["--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", validation, "--block_size", "32"]
    argv += ["--max_steps", "4", "--eval_steps", "2", "--save_strategy", "no", "--disable_tqdm", "true"]
    assert cli.main(argv) == 0, capsys.readouterr().err

    # Independent: the validation documents' bytes and words, and their tokens with one EOS each.
    documents = list(load_raw_datasets(DataArguments(validation_file=validation))["validation"]["text"])
    num_tokens = sum(len(ids) + 1 for ids in tiny_tokenizer(documents, add_special_tokens=False)["input_ids"])
    num_bytes = sum(len(text.encode("utf-8")) for text in documents)
    num_words = sum(len(re.split(r"\s+", text)) for text in documents)  # as lm-eval's wikitext task counts

    results = json.loads((tmp_path / "out" / "eval_results.json").read_text())
    loss = results["eval_loss"]
    assert results["eval_bits_per_byte"] == pytest.approx(loss * num_tokens / num_bytes / math.log(2), rel=1e-6)
    assert results["eval_byte_perplexity"] == pytest.approx(math.exp(loss * num_tokens / num_bytes))
    assert results["eval_word_perplexity"] == pytest.approx(math.exp(loss * num_tokens / num_words))
    # Every evaluation during training logs them too.
    history = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"]
    evaluations = [entry for entry in history if "eval_loss" in entry]
    assert len(evaluations) >= 2 and all("eval_bits_per_byte" in entry for entry in evaluations)


def test_pretrain_notes_that_chinese_has_no_word_perplexity(tiny_tokenizer, caplog):
    sentences = ["今天早上天气很好，我们一起去公园散步。", "学生们在教室里认真学习，老师讲课非常清楚。"] * 20
    raw = DatasetDict({split: Dataset.from_dict({"text": sentences}) for split in ("train", "validation")})
    config = TransformerConfig(vocab_size=len(tiny_tokenizer), hidden_size=32, num_attention_heads=2)
    task = CausalLMTask()
    with caplog.at_level(logging.WARNING, logger="hf_textgen"):
        task.prepare_datasets(raw, tiny_tokenizer, config, DataArguments(block_size=16))
    # The Trainer's metrics leave it out, and one line says why (as `evaluate` does).
    assert set(task.text_units.metrics_from_loss(2.0)) == {"bits_per_byte", "byte_perplexity"}
    notes = [record.getMessage() for record in caplog.records if "word_perplexity left out" in record.getMessage()]
    assert len(notes) == 1 and "bits_per_byte" in notes[0]
