"""Argument parsing: flags and JSON files read alike, command defaults, typed --config_overrides."""

import json

import pytest
import torch

from hf_textgen.data import DataArguments
from hf_textgen.errors import UserError
from hf_textgen.models import RNNConfig, TransformerConfig
from hf_textgen.training.arguments import ModelArguments, TrainingArguments, parse_arguments, warn_if_fsdp_runs_as_ddp
from hf_textgen.training.common import build_config, parse_config_overrides
from hf_textgen.training.pretrain import PRETRAIN_DEFAULTS, PretrainingArguments

TYPES = (ModelArguments, DataArguments, PretrainingArguments)


def test_json_file_and_flags_parse_alike(tmp_path):
    values = {"output_dir": str(tmp_path / "out"), "model_type": "rnn", "max_steps": 7, "train_file": ["a.txt"]}
    path = tmp_path / "args.json"
    path.write_text(json.dumps(values), encoding="utf-8")
    from_file = parse_arguments(TYPES, [str(path)])
    flags = ["--output_dir", values["output_dir"], "--model_type", "rnn", "--max_steps", "7", "--train_file", "a.txt"]
    from_flags = parse_arguments(TYPES, flags)
    for parsed in (from_file, from_flags):
        model_args, data_args, training_args = parsed
        assert model_args.resolved_model_type == "hf_textgen_rnn"
        assert data_args.train_file == ["a.txt"]
        assert training_args.max_steps == 7
        assert training_args.learning_rate == PRETRAIN_DEFAULTS["learning_rate"]  # the command's default
        assert training_args.do_train and training_args.do_eval
        if not torch.cuda.is_available():
            assert training_args.use_cpu  # real gloo DDP under torchrun, and --bf16 allowed


def test_flags_win_over_command_defaults(tmp_path):
    argv = ["--output_dir", str(tmp_path), "--learning_rate", "0.5", "--do_train", "false"]
    _, _, training_args = parse_arguments(TYPES, argv)
    assert training_args.learning_rate == 0.5
    assert not training_args.do_train


def test_output_dir_is_required():
    with pytest.raises(UserError, match="--output_dir"):
        parse_arguments(TYPES, ["--model_type", "rnn"])


def test_unreadable_arguments_files_are_one_line_errors(tmp_path):
    cases = {"broken.yaml": "foo: [\n", "broken.json": '{"a":', "list.yaml": "- 1\n", "unknown.yaml": "bogus: 1\n"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        with pytest.raises(UserError) as caught:
            parse_arguments(TYPES, [str(tmp_path / name)])
        assert name in str(caught.value) and "\n" not in str(caught.value), name


def test_yaml_values_are_typed_as_the_flags_are(tmp_path):
    # PyYAML reads `1e-3` (no dot) as a string; the flag --learning_rate 1e-3 is a float.
    path = tmp_path / "args.yaml"
    path.write_text(f"output_dir: {tmp_path / 'out'}\nlearning_rate: 1e-3\nmax_steps: '7'\nbf16: 'false'\n")
    _, _, training_args = parse_arguments(TYPES, [str(path)])
    assert training_args.learning_rate == 1e-3 and isinstance(training_args.learning_rate, float)
    assert training_args.max_steps == 7 and training_args.bf16 is False


def test_yaml_values_of_the_wrong_type_are_one_line_errors(tmp_path):
    for line in ("max_steps: notanint", "max_steps: 2.5", "learning_rate: fast", "max_steps: [1, 2]"):
        path = tmp_path / "args.yaml"
        path.write_text(f"output_dir: {tmp_path / 'out'}\n{line}\n")
        with pytest.raises(UserError) as caught:
            parse_arguments(TYPES, [str(path)])
        message = str(caught.value)
        assert "args.yaml" in message and line.split(":")[0] in message and "\n" not in message, message


def test_config_overrides_are_typed():
    values = parse_config_overrides("hidden_size=48,dropout=0.1,cell_type=gru,tie_word_embeddings=false", RNNConfig())
    assert values == {"hidden_size": 48, "dropout": 0.1, "cell_type": "gru", "tie_word_embeddings": False}
    with pytest.raises(UserError, match="hidden_size=big"):
        parse_config_overrides("hidden_size=big", RNNConfig())
    with pytest.raises(UserError, match="name=value"):
        parse_config_overrides("hidden_size", RNNConfig())
    with pytest.raises(UserError, match="tie_word_embeddings=maybe"):
        parse_config_overrides("tie_word_embeddings=maybe", RNNConfig())
    # A field that holds None has no type for update_from_string to follow: the likeliest reading is taken.
    assert RNNConfig().embedding_size is None
    assert parse_config_overrides("embedding_size=16", RNNConfig()) == {"embedding_size": 16}


def test_from_scratch_config_takes_preset_tokenizer_ids_then_overrides():
    model_args = ModelArguments(model_type="transformer", config_overrides="num_hidden_layers=2")
    config, from_pretrained = build_config(model_args, vocab_size=300, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    assert isinstance(config, TransformerConfig) and not from_pretrained
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size, config.pad_token_id) == (256, 2, 300, 0)
    bad = ModelArguments(model_type="transformer", config_overrides="hidden_size=250,num_attention_heads=3")
    with pytest.raises(UserError, match="invalid model config"):
        build_config(bad, vocab_size=300)


def test_dataclasses_without_training_arguments_parse():
    # The implied --use_cpu belongs to TrainingArguments only; other commands share the parser.
    (data_args,) = parse_arguments((DataArguments,), ["--block_size", "32"])
    assert data_args.block_size == 32


def test_finetune_from_scratch_defaults_to_the_pretraining_learning_rate(tmp_path):
    from hf_textgen.commands.finetune import parse_finetune_arguments
    from hf_textgen.training.finetune import FINETUNE_DEFAULTS, FLAT_FINETUNE_LEARNING_RATE

    base = ["--output_dir", str(tmp_path / "out"), "--task", "seq2seq"]
    scratch = parse_finetune_arguments([*base, "--model_type", "seq2seq"])[3]
    assert scratch.learning_rate == PRETRAIN_DEFAULTS["learning_rate"]
    # seq2seq trains every weight at one rate: the gentle one, not the layer-wise recipe's head rate.
    pretrained = parse_finetune_arguments([*base, "--model_name_or_path", str(tmp_path)])
    assert pretrained[3].learning_rate == FLAT_FINETUNE_LEARNING_RATE == 1e-4 and pretrained[2].layerwise_lr_decay == 1
    # Tasks that keep the pretrained LM head: one gentle rate; a new classification head: layer-wise from 1e-3.
    causal = parse_finetune_arguments(["--output_dir", str(tmp_path / "o"), "--model_name_or_path", str(tmp_path)])
    assert causal[3].learning_rate == 1e-4 and causal[2].layerwise_lr_decay == 1
    argv = ["--output_dir", str(tmp_path / "o"), "--model_name_or_path", str(tmp_path), "--task", "classification"]
    classification = parse_finetune_arguments(argv)
    assert classification[3].learning_rate == FINETUNE_DEFAULTS["learning_rate"] == 1e-3
    assert classification[2].layerwise_lr_decay == 0.5
    explicit = parse_finetune_arguments([*base, "--model_type", "seq2seq", "--learning_rate", "3e-4"])[3]
    assert explicit.learning_rate == 3e-4


@pytest.mark.parametrize("use_fsdp", [None, "false", "true"])
def test_fsdp_asked_for_on_the_cpu_warns_that_it_runs_as_ddp(tmp_path, monkeypatch, capsys, use_fsdp):
    # What `accelerate launch --config_file scripts/configs/fsdp.yaml` sets; Accelerate runs it as DDP on the CPU.
    if use_fsdp is None:
        monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    else:
        monkeypatch.setenv("ACCELERATE_USE_FSDP", use_fsdp)
    warn_if_fsdp_runs_as_ddp(TrainingArguments(output_dir=str(tmp_path), use_cpu=True))
    lines = capsys.readouterr().err.splitlines()
    if use_fsdp == "true":
        assert len(lines) == 1 and lines[0].startswith("warning: ")
        assert "as DDP" in lines[0] and '"What runs where"' in lines[0]
    else:
        assert lines == []
