"""`finetune --use_peft`: a LoRA adapter for every family and task, loaded back by PEFT's own Auto classes.

Per family and task, two short runs from the same saved base model:
- without `--merge_adapter`, the folder holds an adapter (no full weights) that `AutoPeftModelFor*` loads on top of
  the base model, to the same outputs as the trained model in memory;
- with `--merge_adapter`, the folder is a complete model that the plain Auto class loads, to the same outputs as
  the trained adapter unmerged in memory.
Bad LoRA settings end in one `error:` line before the output folder exists.
"""

import json
import random

import pytest
import torch
from peft import AutoPeftModelForCausalLM, AutoPeftModelForSeq2SeqLM, AutoPeftModelForSequenceClassification
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    TrainerCallback,
)

from hf_textgen import cli
from hf_textgen.commands.finetune import parse_finetune_arguments
from hf_textgen.models import (
    RNNConfig,
    RNNForCausalLM,
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    TransformerConfig,
    TransformerForCausalLM,
)
from hf_textgen.summary import training_summary
from hf_textgen.training.finetune import run_finetune
from hf_textgen.training.lora import apply_lora, merge_lora

COMMON = ["--max_steps", "3", "--per_device_train_batch_size", "4", "--learning_rate", "5e-3", "--seed", "0"]
COMMON += ["--save_strategy", "no", "--eval_strategy", "no", "--report_to", "none", "--logging_steps", "1"]
# Adapter weights start at zero (PEFT's LoRA B): a larger rank and alpha move the outputs visibly in three steps.
LORA = ["--use_peft", "--lora_r", "4", "--lora_alpha", "16", "--lora_dropout", "0.1"]

AUTO_PEFT = {
    "causal_lm": (AutoPeftModelForCausalLM, AutoModelForCausalLM),
    "prompt_completion": (AutoPeftModelForCausalLM, AutoModelForCausalLM),
    "classification": (AutoPeftModelForSequenceClassification, AutoModelForSequenceClassification),
    "seq2seq": (AutoPeftModelForSeq2SeqLM, AutoModelForSeq2SeqLM),
}
CLASSES = ("comedy", "history", "tragedy")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def base_models(tmp_path_factory, tiny_tokenizer_path):
    """Saved, randomly initialised base models of each family, with the tiny tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    ids = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    torch.manual_seed(0)
    models = {
        "transformer": TransformerForCausalLM(
            TransformerConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, **ids)
        ),
        "rnn": RNNForCausalLM(RNNConfig(hidden_size=32, num_hidden_layers=2, cell_type="lstm", **ids)),
        "seq2seq": Seq2SeqTransformerForConditionalGeneration(
            Seq2SeqTransformerConfig(
                hidden_size=32,
                num_attention_heads=2,
                encoder_layers=1,
                decoder_layers=1,
                intermediate_size=64,
                decoder_start_token_id=tokenizer.bos_token_id,
                **ids,
            )
        ),
    }
    folders = {}
    for family, model in models.items():
        folder = tmp_path_factory.mktemp(family) / "base"
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[family] = str(folder)
    return folders


@pytest.fixture(scope="module")
def data_files(tmp_path_factory, tiny_corpus_dir):
    """One small training file per task."""
    folder = tmp_path_factory.mktemp("lora_data")
    rng = random.Random(0)
    (folder / "qa.jsonl").write_text(
        "".join(json.dumps({"prompt": f"Who is {n}?", "completion": f" {n} is a Dane."}) + "\n" for n in "ABCDEFGH")
    )
    rows = ["text,label"]
    for _ in range(24):
        label = rng.choice(CLASSES)
        rows.append(f"a play of {dict(zip(CLASSES, ('merry', 'king', 'death')))[label]} and love,{label}")
    (folder / "plays.csv").write_text("\n".join(rows) + "\n")
    pairs = [{"source": word, "target": word[::-1]} for word in ("abc", "hello", "night", "crown", "sword", "king")]
    (folder / "pairs.jsonl").write_text("".join(json.dumps(pair) + "\n" for pair in pairs * 3))
    return {
        "causal_lm": ["--train_file", f"{tiny_corpus_dir}/train.txt", "--block_size", "32"],
        "prompt_completion": ["--train_file", str(folder / "qa.jsonl")],
        "classification": ["--train_file", str(folder / "plays.csv")],
        "seq2seq": ["--train_file", str(folder / "pairs.jsonl")],
    }


def _inputs(task: str, tokenizer) -> dict[str, torch.Tensor]:
    encoded = tokenizer(["a play of death and love", "Who is A?"], return_tensors="pt", padding=True)
    inputs = {"input_ids": encoded.input_ids, "attention_mask": encoded.attention_mask}
    if task == "seq2seq":
        inputs["decoder_input_ids"] = tokenizer(["olleh"], return_tensors="pt").input_ids.repeat(2, 1)
    return inputs


def _logits(model, inputs) -> torch.Tensor:
    model.eval()
    with torch.no_grad():
        return model(**inputs).logits


class _CaptureLogits(TrainerCallback):
    """The trained model's outputs on fixed inputs at the end of training, before anything is saved."""

    def __init__(self, inputs):
        self.inputs, self.logits, self.model_class = inputs, None, None

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model_class = type(model).__name__
        self.logits = _logits(model, self.inputs)


def _finetune(argv, inputs) -> _CaptureLogits:
    capture = _CaptureLogits(inputs)
    model_args, data_args, finetune_args, training_args, peft_args = parse_finetune_arguments(argv)
    run_finetune(model_args, data_args, finetune_args, training_args, callbacks=[capture], peft_args=peft_args)
    return capture


CASES = [
    ("transformer", "causal_lm"),
    ("rnn", "causal_lm"),
    ("transformer", "prompt_completion"),
    ("rnn", "prompt_completion"),
    ("transformer", "classification"),
    ("rnn", "classification"),
    ("seq2seq", "seq2seq"),
]


@pytest.mark.parametrize(("family", "task"), CASES)
def test_lora_adapter_and_merged_folder(tmp_path, base_models, data_files, family, task, capsys):
    base = base_models[family]
    tokenizer = AutoTokenizer.from_pretrained(base)
    inputs = _inputs(task, tokenizer)
    argv = ["--task", task, "--model_name_or_path", base, *data_files[task], *COMMON, *LORA]
    if task == "causal_lm":
        argv.append("--gradient_checkpointing")  # as TRL trains by default: the frozen base still passes gradients
    auto_peft_class, auto_class = AUTO_PEFT[task]

    adapter_dir = tmp_path / "adapter"
    trained = _finetune([*argv, "--output_dir", str(adapter_dir)], inputs)
    assert trained.model_class.startswith("PeftModel")
    assert (adapter_dir / "adapter_model.safetensors").is_file() and (adapter_dir / "tokenizer.json").is_file()
    assert not (adapter_dir / "model.safetensors").exists()  # an adapter, not a full copy of the weights
    adapter_config = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == base and adapter_config["r"] == 4
    if family == "rnn":
        # nn.LSTM holds no linear layers: its recurrent matrices are adapted as parameters.
        assert sorted(adapter_config["target_parameters"]) == [
            f"model.layers.{layer}.weight_{kind}_l0" for layer in (0, 1) for kind in ("hh", "ih")
        ]
    else:
        targets = {"transformer": {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"}}.get(
            family, {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"}
        )
        assert {name.rsplit(".", 1)[-1] for name in adapter_config["target_modules"]} == targets
    load_kwargs = {}
    if task == "classification":
        assert "score" in adapter_config["modules_to_save"]  # the new head is trained in full and saved
        load_kwargs["num_labels"] = len(CLASSES)  # the base model folder has no head to say how many

    if (family, task) == ("rnn", "causal_lm"):
        # `push` uploads complete model folders: an adapter is refused with a line saying what to do instead.
        status = cli.main(["push", "--model_path", str(adapter_dir), "--repo_id", "someone/adapter"])
        assert status == 2 and "--merge_adapter" in capsys.readouterr().err
        # So do the commands that read a model folder, and the end-of-run summary points to what works.
        for command in (
            ["generate", "--prompt", "To be"],
            ["evaluate"],
            ["export", "--format", "llama", "--output_dir", str(tmp_path / "x")],
        ):
            status = cli.main([command[0], "--model_name_or_path", str(adapter_dir), *command[1:]])
            err = capsys.readouterr().err
            assert status == 2 and "Traceback" not in err, err
            assert [line for line in err.splitlines() if line.startswith("error:")] == [
                f"error: {adapter_dir} holds a LoRA adapter (adapter_config.json), not a model: load it with "
                f"peft's AutoPeftModelForCausalLM, or fine-tune with --merge_adapter for a complete model folder"
            ], err
        assert not (tmp_path / "x").exists()
        summary = training_summary(adapter_dir, {"eval_loss": 1.0}, task)
        assert f"AutoPeftModelForCausalLM.from_pretrained({str(adapter_dir)!r})" in summary
        assert "LoRA adapter" in summary and "hf-textgen generate" not in summary and "hf-textgen push" not in summary

    reloaded = auto_peft_class.from_pretrained(str(adapter_dir), **load_kwargs)
    base_logits = _logits(auto_class.from_pretrained(base, **load_kwargs), inputs)
    assert torch.allclose(_logits(reloaded, inputs), trained.logits, atol=1e-5)
    if task != "classification":  # a classifier's head is new, so its outputs differ from the base anyway
        assert not torch.allclose(trained.logits, base_logits, atol=1e-4)  # training moved the adapter

    merged_dir = tmp_path / "merged"
    trained = _finetune([*argv, "--merge_adapter", "--output_dir", str(merged_dir)], inputs)
    assert not (merged_dir / "adapter_config.json").exists() and (merged_dir / "model.safetensors").is_file()
    merged_config = json.loads((merged_dir / "config.json").read_text())
    assert "auto_map" in merged_config and list(merged_dir.glob("modeling_*.py"))  # shares like any other folder
    merged = auto_class.from_pretrained(str(merged_dir))
    assert type(merged).__module__.startswith("hf_textgen.models")
    assert torch.allclose(_logits(merged, inputs), trained.logits, atol=1e-5)
    if task == "classification":
        assert merged.config.id2label == dict(enumerate(CLASSES))


def _refused(capsys, argv, output_dir, expected: str) -> None:
    status = cli.main(["finetune", *argv, "--output_dir", str(output_dir)])
    err = capsys.readouterr().err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2, err
    assert len(error_lines) == 1 and "Traceback" not in err, err
    assert expected in error_lines[0], error_lines[0]
    assert not output_dir.exists()


def test_bad_lora_settings_are_refused_before_the_output_folder_exists(tmp_path, base_models, data_files, capsys):
    argv = ["--task", "causal_lm", "--model_name_or_path", base_models["transformer"], *data_files["causal_lm"]]
    argv += COMMON
    out = tmp_path / "out"
    _refused(capsys, [*argv, "--use_peft", "--lora_r", "0"], out, "--lora_r")
    _refused(capsys, [*argv, "--use_peft", "--lora_dropout", "1.5"], out, "--lora_dropout")
    _refused(capsys, [*argv, "--use_peft", "--lora_target_modules", "attention_of_doom"], out, "attention_of_doom")
    _refused(capsys, [*argv, "--merge_adapter"], out, "--use_peft")
    scratch = ["--task", "causal_lm", "--model_type", "rnn", *data_files["causal_lm"], *COMMON, "--use_peft"]
    scratch += ["--tokenizer_name", base_models["rnn"]]
    _refused(capsys, scratch, out, "--model_name_or_path")


@pytest.mark.parametrize("family", ["transformer", "rnn"])
def test_merging_a_lora_on_a_tied_head_keeps_the_input_embeddings(tmp_path, base_models, family):
    # With tied embeddings the head *is* the embedding matrix: merging the head's adapter in place would also
    # change every input embedding, so the merged model would compute something the adapter never did.
    model = AutoModelForCausalLM.from_pretrained(base_models[family])
    assert model.config.tie_word_embeddings
    embeddings = model.get_input_embeddings().weight.detach().clone()
    peft_args = parse_finetune_arguments(
        ["--model_name_or_path", base_models[family], "--output_dir", str(tmp_path), *LORA]
        + ["--lora_target_modules", "lm_head"]
    )[-1]
    adapted = apply_lora(model, AutoModelForCausalLM, peft_args).eval()
    torch.manual_seed(0)
    for name, parameter in adapted.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(parameter, std=0.5)  # a trained adapter: B is no longer zero
    input_ids = torch.tensor([[5, 9, 2, 7, 11]])
    with torch.no_grad():
        expected = adapted(input_ids=input_ids).logits
    merged = merge_lora(adapted)
    merged.save_pretrained(tmp_path / "merged")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    for candidate in (merged.eval(), reloaded):
        assert torch.equal(candidate.get_input_embeddings().weight, embeddings)
        with torch.no_grad():
            assert torch.allclose(candidate(input_ids=input_ids).logits, expected, atol=1e-5)


class _StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        control.should_training_stop = state.global_step >= self.step


def test_a_lora_run_resumes_from_its_checkpoint(tmp_path, base_models, data_files):
    # A LoRA checkpoint holds the adapter and no config.json: the base config comes from --model_name_or_path again.
    argv = ["--task", "causal_lm", "--model_name_or_path", base_models["transformer"], *data_files["causal_lm"]]
    argv += [*COMMON, *LORA, "--save_strategy", "steps", "--save_steps", "2"]
    argv[argv.index("--max_steps") + 1] = "4"
    runs = {}
    for name, callbacks in (("stopped", [_StopAt(2)]), ("resumed", []), ("uninterrupted", [])):
        folder = tmp_path / ("uninterrupted" if name == "uninterrupted" else "out")
        args = parse_finetune_arguments([*argv, "--output_dir", str(folder)])
        run_finetune(*args[:4], callbacks=callbacks, peft_args=args[4])
        runs[name] = load_file(folder / "adapter_model.safetensors")
        if name == "stopped":
            assert (folder / "checkpoint-2" / "adapter_model.safetensors").is_file()
    state = json.loads((tmp_path / "out" / "trainer_state.json").read_text())
    assert state["global_step"] == 4  # the second run went on from checkpoint-2
    assert runs["resumed"].keys() == runs["uninterrupted"].keys()
    assert all(torch.allclose(runs["resumed"][key], runs["uninterrupted"][key], atol=1e-6) for key in runs["resumed"])
    assert not all(torch.equal(runs["stopped"][key], runs["resumed"][key]) for key in runs["resumed"])
