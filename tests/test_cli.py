"""The `hf-textgen` front door: help, version and flag mistakes answer without torch or transformers.

Each case runs the console script's entry point (`hf_textgen_cli.main`) in a fresh interpreter and looks at which
modules it imported: a check of the import set, not of a time.
"""

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "datasets", "evaluate", "accelerate", "matplotlib")

_PROBE = """
import json, sys
import hf_textgen_cli
try:
    status = hf_textgen_cli.main(sys.argv[1:])
except SystemExit as exit:  # argparse's --help
    status = exit.code
print(json.dumps({"status": status, "heavy": [m for m in HEAVY if m in sys.modules]}), file=sys.stderr)
"""


def run_entry_point(*argv: str) -> tuple[dict, str, str]:
    """Run `hf-textgen ARGV` in a fresh interpreter; returns (the probe's report, stdout, stderr without it)."""
    code = f"HEAVY = {HEAVY!r}\n{_PROBE}"
    completed = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=300)
    *stderr, report = completed.stderr.strip().splitlines()
    return json.loads(report), completed.stdout, "\n".join(stderr)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["no-such-command"],
        ["generate", "--help"],
        ["generate", "--prompt", "hi"],  # no --model_name_or_path
        ["generate", "--model_name_or_path", "m", "--top_p", "2"],
        ["demo", "--help"],
        ["demo", "--max_steps", "x"],
        ["push", "--help"],
        ["evaluate", "--model_name_or_path", "m", "--no_such_flag"],
        ["train-tokenizer", "--help"],
    ],
)
def test_help_version_and_flag_mistakes_import_no_torch(argv):
    report, stdout, stderr = run_entry_point(*argv)
    if argv[0].startswith("--") or argv[-1] == "--help":
        assert report["status"] in (0, None) and stdout.strip()
    else:
        assert report["status"] == 2
        assert stderr.startswith("error: ") and len(stderr.splitlines()) == 1
    # evaluate and train-tokenizer read their flags with transformers' HfArgumentParser (torch-free).
    allowed = {"transformers"} if argv[0] in ("evaluate", "train-tokenizer") else set()
    assert set(report["heavy"]) <= allowed, report


def test_version_is_the_installed_one():
    from importlib.metadata import version

    _, stdout, _ = run_entry_point("--version")
    assert stdout.strip() == f"hf-textgen {version('hf_textgen')}"


def test_training_help_needs_transformers_but_not_the_data_or_model_code():
    # pretrain's flags include every TrainingArguments field, so transformers (and torch) are imported; the data
    # pipeline and the models are not.
    report, stdout, _ = run_entry_point("pretrain", "--help")
    assert "--learning_rate" in stdout and "--block_size" in stdout
    assert "datasets" not in report["heavy"] and "evaluate" not in report["heavy"]


def test_generate_registers_the_models_and_imports_no_data_or_plotting_code(tiny_tokenizer_path, tmp_path):
    # Loading the folder needs the Auto classes registered: the deferred package import ran before the command.
    from transformers import AutoTokenizer

    from hf_textgen import TransformerConfig, TransformerForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    config = TransformerConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=64,
    )
    TransformerForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    argv = ["generate", "--model_name_or_path", str(tmp_path), "--prompt", "To be", "--max_new_tokens", "4"]
    report, stdout, stderr = run_entry_point(*argv, "--seed", "0")
    assert report["status"] == 0, stderr
    assert stdout.startswith("To be")
    # accelerate is imported by transformers' modeling_utils itself whenever it is installed.
    assert not {"datasets", "evaluate", "matplotlib"} & set(report["heavy"]), report
