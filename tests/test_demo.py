"""`hf-textgen demo`: the whole workflow end to end in its --quick setting, and its output-folder rules."""

import json
import math

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_textgen.cli import main as cli_main
from hf_textgen.commands.demo import RESULTS_NAME


@pytest.mark.slow
def test_quick_demo_leaves_a_ready_to_share_model(tmp_path, capsys):
    output_dir = tmp_path / "demo_output"
    # --time_budget times the model's steps first; the quick setting then still runs its 5 steps.
    assert cli_main(["demo", "--quick", "--time_budget", "60", "--output_dir", str(output_dir)]) == 0
    out = capsys.readouterr().out
    assert "CPU matrix features: " in out and "5 steps fit the 60 s training budget" in out

    for step in ("[1/4]", "[2/4]", "[3/4]", "[4/4]", "validation loss per character", "total time"):
        assert step in out
    for name in ("config.json", "model.safetensors", "tokenizer.json", "generation_config.json", RESULTS_NAME):
        assert (output_dir / name).is_file(), name
    evaluation = json.loads((output_dir / "evaluation" / "eval_results.json").read_text())
    results = json.loads((output_dir / RESULTS_NAME).read_text())
    assert results["validation_loss_per_character"] == pytest.approx(evaluation["loss_per_character"])
    assert results["max_steps"] == 5 and results["seconds"]["total"] > 0
    # The validation play is scored paragraph by paragraph because the folder records that pretraining read the
    # corpus so (scored whole, each blank line would cost the model nats it was never trained to spend).
    assert evaluation["data"]["read_by"] == "paragraph"
    assert evaluation["data"]["reading_chosen_by"] == "training_data.json"

    # Character-level: one token per character, so the two losses nearly coincide; a few steps of training
    # already beat the uniform guess over the vocabulary.
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    assert tokenizer.model_max_length == 64  # the quick setting's context
    assert evaluation["num_characters"] == pytest.approx(evaluation["num_tokens"], abs=1)
    assert results["validation_loss_per_character"] < math.log(len(tokenizer))

    # The folder is a normal transformers model folder that samples with its saved defaults.
    model = AutoModelForCausalLM.from_pretrained(output_dir)
    inputs = tokenizer("HERO.\n", return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=5)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 5
    assert model.generation_config.do_sample is True


def test_refuses_a_folder_that_is_not_an_earlier_demo(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    assert cli_main(["demo", "--quick", "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--overwrite_output_dir" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max_steps", "0"], "--max_steps"),
        (["--time_budget", "0"], "--time_budget"),
        (["--max_new_tokens", "5000"], "--max_new_tokens"),
        (["--x"], "--x"),
    ],
)
def test_bad_flags_are_one_clear_line(tmp_path, argv, message, capsys):
    assert cli_main(["demo", "--quick", "--output_dir", str(tmp_path / "out"), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert not (tmp_path / "out").exists()
