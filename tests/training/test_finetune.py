"""`hf-textgen finetune`: completion-only loss masking, classification metrics and label maps, causal_lm."""

import json
import random

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    TrainerCallback,
)

from hf_textgen import cli
from hf_textgen.training.finetune import IGNORE_INDEX, tokenize_prompt_completion

TINY_TRANSFORMER = (
    "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,max_position_embeddings=64"
)
COMMON = ["--max_steps", "6", "--per_device_train_batch_size", "8", "--logging_steps", "2", "--disable_tqdm", "true"]


@pytest.fixture()
def tokenizer(tiny_tokenizer_path):
    return AutoTokenizer.from_pretrained(tiny_tokenizer_path)


def test_prompt_completion_labels_mask_prompt_and_padding(tokenizer):
    examples = {"prompt": ["To be, or not", "Q:"], "completion": [" to be", " Hamlet, Prince of Denmark"]}
    features = tokenize_prompt_completion(examples, tokenizer, "prompt", "completion", max_length=64)
    for index, (prompt, completion) in enumerate(zip(examples["prompt"], examples["completion"])):
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
        input_ids, labels = features["input_ids"][index], features["labels"][index]
        assert input_ids == prompt_ids + completion_ids + [tokenizer.eos_token_id]  # EOS appended
        assert labels == [IGNORE_INDEX] * len(prompt_ids) + completion_ids + [tokenizer.eos_token_id]

    rows = [{key: values[i] for key, values in features.items()} for i in range(2)]
    batch = DataCollatorForSeq2Seq(tokenizer, label_pad_token_id=IGNORE_INDEX, padding=True)(rows)
    short = 0 if len(rows[0]["input_ids"]) < len(rows[1]["input_ids"]) else 1
    length = len(rows[short]["input_ids"])
    assert (batch["labels"][short, length:] == IGNORE_INDEX).all()  # padding is never scored
    assert (batch["attention_mask"][short, length:] == 0).all()
    scored = (batch["labels"] != IGNORE_INDEX).sum().item()
    assert scored == sum(sum(label != IGNORE_INDEX for label in row["labels"]) for row in rows)


def test_prompt_completion_truncation_keeps_the_prompt_mask(tokenizer):
    features = tokenize_prompt_completion(
        {"p": ["a long prompt of several words"], "c": [" done"]}, tokenizer, "p", "c", max_length=3
    )
    assert len(features["input_ids"][0]) == 3
    assert features["labels"][0] == [IGNORE_INDEX] * 3  # such rows are dropped before training


@pytest.fixture(scope="module")
def pretrained_transformer(tmp_path_factory, tiny_corpus_dir, tiny_tokenizer_path):
    """A tiny Transformer pretrained for a few steps: the starting point of the fine-tuning tests."""
    output_dir = tmp_path_factory.mktemp("pretrained") / "model"
    argv = ["pretrain", "--output_dir", str(output_dir), "--model_type", "transformer"]
    argv += ["--config_overrides", TINY_TRANSFORMER, "--tokenizer_name", tiny_tokenizer_path, "--block_size", "32"]
    argv += ["--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", f"{tiny_corpus_dir}/validation.txt"]
    argv += [*COMMON, "--save_strategy", "no"]
    assert cli.main(argv) == 0
    return output_dir


def test_classification_metrics_and_label_maps(tmp_path, pretrained_transformer):
    rng = random.Random(0)
    rows = ["text,label"]
    for _ in range(80):
        label = rng.choice(["comedy", "tragedy", "history"])
        word = {"comedy": "merry", "tragedy": "death", "history": "king"}[label]
        rows.append(f"a play of {word} and {rng.choice(['love', 'war', 'night'])},{label}")
    data = tmp_path / "plays.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    output_dir = tmp_path / "classifier"
    argv = ["finetune", "--task", "classification", "--model_name_or_path", str(pretrained_transformer)]
    argv += ["--train_file", str(data), "--validation_split_percentage", "20", "--output_dir", str(output_dir)]
    argv += [*COMMON, "--learning_rate", "3e-3", "--eval_strategy", "steps", "--eval_steps", "3"]
    assert cli.main(argv) == 0

    results = json.loads((output_dir / "all_results.json").read_text())
    assert {"eval_accuracy", "eval_f1", "eval_loss", "train_loss"} <= set(results)
    assert 0.0 <= results["eval_f1"] <= 1.0 and 0.0 <= results["eval_accuracy"] <= 1.0
    config = AutoConfig.from_pretrained(output_dir)
    assert config.id2label == {0: "comedy", 1: "history", 2: "tragedy"}
    assert config.label2id == {"comedy": 0, "history": 1, "tragedy": 2}
    model = AutoModelForSequenceClassification.from_pretrained(output_dir)
    assert model.config.num_labels == 3


def test_prompt_completion_end_to_end(tmp_path, pretrained_transformer):
    data = tmp_path / "qa.jsonl"
    lines = [
        json.dumps({"prompt": f"Who is {name}?", "completion": f" {name} is a Dane."}) for name in "ABCDEFGHIJ" * 3
    ]
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    output_dir = tmp_path / "sft"
    argv = ["finetune", "--task", "prompt_completion", "--model_name_or_path", str(pretrained_transformer)]
    argv += ["--train_file", str(data), "--output_dir", str(output_dir), *COMMON, "--learning_rate", "3e-3"]
    argv += ["--eval_strategy", "no"]
    assert cli.main(argv) == 0
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["perplexity"] == pytest.approx(torch.tensor(results["eval_loss"]).exp().item(), rel=1e-4)
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    losses = [entry["loss"] for entry in history if "loss" in entry]
    assert losses[-1] < losses[0]


def test_causal_lm_continues_from_a_model(tmp_path, pretrained_transformer, tiny_corpus_dir):
    output_dir = tmp_path / "continued"
    argv = ["finetune", "--task", "causal_lm", "--model_name_or_path", str(pretrained_transformer)]
    argv += ["--train_file", f"{tiny_corpus_dir}/train.txt", "--validation_file", f"{tiny_corpus_dir}/validation.txt"]
    argv += ["--block_size", "32", "--output_dir", str(output_dir)]
    argv += [*COMMON, "--save_strategy", "no", "--eval_strategy", "no"]
    assert cli.main(argv) == 0
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert (output_dir / "tokenizer.json").is_file()


class _CaptureOptimizer(TrainerCallback):
    """Records, per parameter, the learning rate the Trainer's optimizer starts from (before its schedule)."""

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.model = model
        self.lr_of = {id(p): group["initial_lr"] for group in optimizer.param_groups for p in group["params"]}


def _classification_data(tmp_path):
    rng = random.Random(0)
    rows = ["text,label"] + [f"a play of {rng.choice(['love', 'war'])},{rng.choice(['a', 'b'])}" for _ in range(40)]
    data = tmp_path / "plays.csv"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return data


def _finetune_with_capture(argv):
    from hf_textgen.commands.finetune import parse_finetune_arguments
    from hf_textgen.training.finetune import run_finetune

    model_args, data_args, finetune_args, training_args, peft_args = parse_finetune_arguments(argv)
    capture = _CaptureOptimizer()
    run_finetune(model_args, data_args, finetune_args, training_args, callbacks=[capture], peft_args=peft_args)
    return capture


def test_finetune_from_pretrained_uses_the_measured_recipe(tmp_path, pretrained_transformer):
    # Layer-wise learning rates (ULMFiT, x0.5 per layer below the head) and mean pooling for the new head.
    output_dir = tmp_path / "classifier"
    argv = ["--task", "classification", "--model_name_or_path", str(pretrained_transformer)]
    argv += ["--train_file", str(_classification_data(tmp_path)), "--output_dir", str(output_dir), *COMMON]
    capture = _finetune_with_capture(argv)
    model, lr_of = capture.model, capture.lr_of
    assert lr_of[id(model.score.weight)] == lr_of[id(model.model.norm.weight)] == pytest.approx(1e-3)
    assert lr_of[id(model.model.layers[0].self_attn.o_proj.weight)] == pytest.approx(5e-4)  # the one layer
    assert lr_of[id(model.model.embed_tokens.weight)] == pytest.approx(2.5e-4)
    assert AutoConfig.from_pretrained(output_dir).classifier_pooling == "mean"
    results = json.loads((output_dir / "train_results.json").read_text())
    assert results["base_model"] == str(pretrained_transformer)

    # The user's choice wins: one rate for every weight, last-token pooling.
    output_dir = tmp_path / "flat"
    argv = ["--task", "classification", "--model_name_or_path", str(pretrained_transformer)]
    argv += ["--train_file", str(_classification_data(tmp_path)), "--output_dir", str(output_dir), *COMMON]
    argv += ["--layerwise_lr_decay", "1", "--classifier_pooling", "last", "--learning_rate", "2e-4"]
    capture = _finetune_with_capture(argv)
    assert list(capture.lr_of.values()) == pytest.approx([2e-4] * len(capture.lr_of))
    assert AutoConfig.from_pretrained(output_dir).classifier_pooling == "last"


def test_finetune_from_scratch_trains_every_weight_at_one_rate(tmp_path, tiny_tokenizer_path):
    output_dir = tmp_path / "scratch"
    argv = ["--task", "classification", "--model_type", "transformer", "--config_overrides", TINY_TRANSFORMER]
    argv += ["--tokenizer_name", tiny_tokenizer_path, "--train_file", str(_classification_data(tmp_path))]
    argv += ["--output_dir", str(output_dir), *COMMON]
    capture = _finetune_with_capture(argv)
    assert list(capture.lr_of.values()) == pytest.approx([1e-3] * len(capture.lr_of))
    assert AutoConfig.from_pretrained(output_dir).classifier_pooling == "last"
    assert "base_model" not in json.loads((output_dir / "train_results.json").read_text())


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--layerwise_lr_decay", "0"], "--layerwise_lr_decay must be in (0, 1]"),
        (["--classifier_pooling", "max"], "--classifier_pooling must be 'last' or 'mean'"),
    ],
)
def test_finetune_recipe_flags_are_checked(tmp_path, capsys, flags, message):
    argv = ["finetune", "--task", "classification", "--model_type", "transformer", "--output_dir", str(tmp_path / "o")]
    assert cli.main([*argv, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
