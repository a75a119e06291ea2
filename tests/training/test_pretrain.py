"""`hf-textgen pretrain`: the finished folder, falling loss, bf16 autocast on CPU, config files, resume rules."""

import json
import random

import pytest
import torch
import yaml
from transformers import AutoConfig, AutoModelForCausalLM, TrainerCallback

from hf_textgen import cli
from hf_textgen.errors import UserError
from hf_textgen.training.common import last_complete_checkpoint, resolve_resume_checkpoint

TINY = {
    "rnn": "hidden_size=32,num_hidden_layers=1",
    "transformer": "hidden_size=32,num_hidden_layers=1,num_attention_heads=2,intermediate_size=64,"
    "max_position_embeddings=64",
}


def _pretrain_argv(output_dir, corpus_dir, *extra, family="transformer", steps=6):
    return [
        "pretrain",
        "--output_dir",
        str(output_dir),
        "--model_type",
        family,
        "--config_overrides",
        TINY[family],
        "--train_file",
        f"{corpus_dir}/train.txt",
        "--validation_file",
        f"{corpus_dir}/validation.txt",
        "--block_size",
        "32",
        "--max_steps",
        str(steps),
        "--per_device_train_batch_size",
        "8",
        "--logging_steps",
        "2",
        "--eval_steps",
        "3",
        "--save_steps",
        "3",
        "--disable_tqdm",
        "true",
        *extra,
    ]


@pytest.fixture(scope="module")
def unseen_corpus_dir(tmp_path_factory):
    """A corpus the project never saw: made-up words in a tiny grammar, so there is structure to learn."""
    rng = random.Random(0)
    subjects = ["the zorp", "a blick", "my quen", "every drab"]
    verbs = ["glims", "trells", "vorps", "snazzles"]
    objects = ["the moon.", "a frell.", "two wugs.", "some plinth."]
    lines = [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)}" for _ in range(600)]
    folder = tmp_path_factory.mktemp("unseen_corpus")
    (folder / "train.txt").write_text("\n".join(lines[:500]) + "\n", encoding="utf-8")
    (folder / "validation.txt").write_text("\n".join(lines[500:]) + "\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("family", ["rnn", "transformer"])
def test_loss_falls_on_unseen_corpus_and_folder_is_complete(tmp_path, unseen_corpus_dir, family):
    """From scratch with a tokenizer trained on the data: eval loss falls, and the folder holds every artefact."""
    output_dir = tmp_path / "out"
    argv = _pretrain_argv(output_dir, unseen_corpus_dir, family=family, steps=20)
    argv += ["--tokenizer_vocab_size", "300", "--learning_rate", "1e-2", "--lr_scheduler_type", "constant"]
    argv += ["--eval_on_start", "true"]
    assert cli.main(argv) == 0

    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "generation_config.json",
        "train_results.json",
        "eval_results.json",
        "all_results.json",
        "trainer_state.json",
        "loss_curves.png",
    ):
        assert (output_dir / name).is_file(), name
    config = json.loads((output_dir / "config.json").read_text())
    assert config["auto_map"]["AutoModelForCausalLM"].startswith("modeling_")
    assert config["vocab_size"] == 300  # from the tokenizer trained on the data
    assert config["use_cache"] is True  # the Trainer turns it off for training; the saved model generates
    assert any(output_dir.glob("modeling_*.py"))  # the code travels with the weights (remote code)

    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    eval_losses = [entry["eval_loss"] for entry in history if "eval_loss" in entry]
    assert len(eval_losses) >= 3
    assert eval_losses[-1] < eval_losses[0] - 0.5, eval_losses
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["perplexity"] == pytest.approx(torch.tensor(results["eval_loss"]).exp().item(), rel=1e-4)
    assert {"train_loss", "eval_loss", "train_runtime"} <= set(results)

    model = AutoModelForCausalLM.from_pretrained(output_dir)
    assert model.config.model_type == f"hf_textgen_{family}"


class _RecordLinearDtypes(TrainerCallback):
    def __init__(self):
        self.dtypes = set()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(lambda _module, _inputs, output: self.dtypes.add(output.dtype))


def test_bf16_autocasts_on_cpu(tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    """--bf16 on a CPU-only machine trains with bf16 matmuls (autocast), master weights staying fp32."""
    from hf_textgen.data import DataArguments
    from hf_textgen.training.arguments import ModelArguments, parse_arguments
    from hf_textgen.training.pretrain import PretrainingArguments, run_pretrain

    argv = _pretrain_argv(tmp_path / "out", tiny_corpus_dir, "--bf16", "--tokenizer_name", tiny_tokenizer_path)
    model_args, data_args, training_args = parse_arguments(
        (ModelArguments, DataArguments, PretrainingArguments), argv[1:]
    )
    if not torch.cuda.is_available():
        assert training_args.use_cpu
    recorder = _RecordLinearDtypes()
    run_pretrain(model_args, data_args, training_args, callbacks=[recorder])
    assert recorder.dtypes == {torch.bfloat16}
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert next(saved.parameters()).dtype == torch.float32


def test_yaml_config_file(tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    """One .yaml path in place of the flags is read as the same arguments."""
    output_dir = tmp_path / "from_yaml"
    values = {
        "output_dir": str(output_dir),
        "model_type": "rnn",
        "config_overrides": "hidden_size=24,num_hidden_layers=1,cell_type=gru",
        "tokenizer_name": tiny_tokenizer_path,
        "train_file": [f"{tiny_corpus_dir}/train.txt"],
        "validation_file": f"{tiny_corpus_dir}/validation.txt",
        "block_size": 16,
        "max_steps": 2,
        "save_strategy": "no",
        "disable_tqdm": True,
    }
    path = tmp_path / "args.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    assert cli.main(["pretrain", str(path)]) == 0
    config = AutoConfig.from_pretrained(output_dir)
    assert (config.hidden_size, config.cell_type) == (24, "gru")
    assert json.loads((output_dir / "trainer_state.json").read_text())["global_step"] == 2

    path.write_text(yaml.safe_dump({**values, "hidden_sise": 3}), encoding="utf-8")
    with pytest.raises(UserError, match="hidden_sise"):
        from hf_textgen.commands.pretrain import main

        main([str(path)])


def test_existing_output_dir_resumes_from_last_complete_checkpoint(tmp_path, tiny_corpus_dir, tiny_tokenizer_path):
    output_dir = tmp_path / "out"
    argv = _pretrain_argv(output_dir, tiny_corpus_dir, "--tokenizer_name", tiny_tokenizer_path, steps=6)
    argv += ["--save_total_limit", "5"]
    assert cli.main(argv) == 0
    assert last_complete_checkpoint(output_dir).endswith("checkpoint-6")
    # A save interrupted by a kill leaves a folder without trainer_state.json: it must be skipped.
    partial = output_dir / "checkpoint-9"
    partial.mkdir()
    (partial / "model.safetensors").write_bytes(b"")
    assert last_complete_checkpoint(output_dir).endswith("checkpoint-6")

    # Asking for more steps in the same folder continues from step 6.
    argv[argv.index("--max_steps") + 1] = "9"
    assert cli.main(argv) == 0
    state = json.loads((output_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 9
    losses = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert losses == [1, 2, 4, 6, 8]  # the history of the first run carried on, not restarted


def test_non_empty_output_dir_without_checkpoints(tmp_path, tiny_corpus_dir, tiny_tokenizer_path, capsys):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "notes.txt").write_text("mine")
    argv = _pretrain_argv(output_dir, tiny_corpus_dir, "--tokenizer_name", tiny_tokenizer_path, steps=2)
    assert cli.main(argv) == 2
    assert "--overwrite_output_dir" in capsys.readouterr().err
    assert (output_dir / "notes.txt").read_text() == "mine"
    assert cli.main([*argv, "--overwrite_output_dir"]) == 0
    assert not (output_dir / "notes.txt").exists()
    assert (output_dir / "model.safetensors").is_file()


def test_resume_from_checkpoint_must_be_complete(tmp_path):
    class Args:
        resume_from_checkpoint = str(tmp_path / "checkpoint-3")
        output_dir = str(tmp_path)
        overwrite_output_dir = False

    with pytest.raises(UserError, match="checkpoint-3 does not exist; check the path"):
        resolve_resume_checkpoint(Args)
    (tmp_path / "checkpoint-3").mkdir()
    with pytest.raises(UserError, match=r"incomplete checkpoint \(missing: model weights .*, trainer_state.json;"):
        resolve_resume_checkpoint(Args)
    (tmp_path / "checkpoint-3" / "model.safetensors").write_bytes(b"")
    with pytest.raises(UserError, match=r"incomplete checkpoint \(missing: trainer_state.json;"):
        resolve_resume_checkpoint(Args)


@pytest.mark.parametrize("load_best_model_at_end", [False, True])
def test_the_last_steps_evaluation_is_not_repeated(tmp_path, tiny_corpus_dir, load_best_model_at_end):
    """With eval_steps dividing max_steps the final metrics are the last step's evaluation, not a second run of it;
    a run that loads its best checkpoint at the end evaluates that checkpoint."""
    output_dir = tmp_path / "out"
    argv = _pretrain_argv(output_dir, tiny_corpus_dir, steps=6)  # evaluates at steps 3 and 6
    argv += ["--load_best_model_at_end", str(load_best_model_at_end).lower()]
    assert cli.main(argv) == 0

    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    evaluations = [entry for entry in history if "eval_loss" in entry]
    assert [entry["step"] for entry in evaluations] == ([3, 6, 6] if load_best_model_at_end else [3, 6])
    results = json.loads((output_dir / "eval_results.json").read_text())
    assert results["eval_loss"] == evaluations[-1]["eval_loss"]
    assert results["eval_runtime"] == evaluations[-1]["eval_runtime"]
    assert results["perplexity"] == pytest.approx(torch.tensor(results["eval_loss"]).exp().item(), rel=1e-4)
