"""`hf-textgen push` against the Hub-compatible test server, and loading back where hf_textgen is not installed.

Each model family is pushed once with the CLI; one fresh interpreter that cannot import hf_textgen then loads
every pushed model, tokenizer and pipeline with `trust_remote_code=True` and writes the logits it computes, which
must equal the local model's.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
from hub_server import _validate_card_metadata
from hub_testing import OTHER_TOKEN, TOKEN
from huggingface_hub import ModelCard

import hf_textgen
from hf_textgen.cli import run_command
from hf_textgen.commands.push import main as push_main

WRONG_TOKEN = "hf_notAValidToken000"
PROBE_IDS = [[1, 45, 97, 200, 13, 301, 7, 2]]

SIZES_SEQ2SEQ = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
FAMILIES = {
    "rnn": ("RNNConfig", "RNNForCausalLM", {"hidden_size": 32, "num_hidden_layers": 1}),
    "transformer": (
        "TransformerConfig",
        "TransformerForCausalLM",
        {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64},
    ),
    "seq2seq": (
        "Seq2SeqTransformerConfig",
        "Seq2SeqTransformerForConditionalGeneration",
        {**SIZES_SEQ2SEQ, "encoder_layers": 1, "decoder_layers": 1},
    ),
}
# Also a classifier, whose card, Auto class and pipeline differ.
FAMILIES["classifier"] = ("RNNConfig", "RNNForSequenceClassification", {"hidden_size": 32, "num_labels": 3})
AUTO_CLASSES = {"seq2seq": "AutoModelForSeq2SeqLM", "classifier": "AutoModelForSequenceClassification"}
AVAILABLE = [family for family, (_, model, _) in FAMILIES.items() if hasattr(hf_textgen, model)]


def _build_model(family: str):
    config_name, model_name, sizes = FAMILIES[family]
    config = getattr(hf_textgen, config_name)(
        vocab_size=512, max_position_embeddings=64, pad_token_id=0, bos_token_id=1, eos_token_id=2, **sizes
    )
    torch.manual_seed(0)
    return getattr(hf_textgen, model_name)(config).eval()


def _logits(model, family: str) -> torch.Tensor:
    input_ids = torch.tensor(PROBE_IDS)
    with torch.no_grad():
        if family == "seq2seq":
            return model(input_ids=input_ids, decoder_input_ids=input_ids[:, :4]).logits
        return model(input_ids=input_ids).logits


def _model_folder(root, family: str, tokenizer_path: str):
    """A finished training folder: model, tokenizer, trainer state, results, a plot and a pickled argument dump."""
    from transformers import AutoTokenizer

    folder = root / family
    model = _build_model(family)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tokenizer_path).save_pretrained(folder)
    state = {"global_step": 4, "max_steps": 4, "log_history": [{"step": 4, "loss": 6.1, "learning_rate": 1e-3}]}
    (folder / "trainer_state.json").write_text(json.dumps(state))
    (folder / "all_results.json").write_text(json.dumps({"eval_loss": 6.0, "perplexity": math.exp(6.0)}))
    (folder / "loss_curves.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a plot")
    # A Trainer writes the pickled TrainingArguments, which can hold a --hub_token: push must leave it behind.
    torch.save({"hub_token": TOKEN}, folder / "training_args.bin")
    (folder / "checkpoint-2").mkdir()
    (folder / "checkpoint-2" / "optimizer.pt").write_bytes(b"optimizer state")
    return folder, _logits(model, family)


_LOAD_SCRIPT = """
import json, sys, torch
import transformers
from transformers import AutoTokenizer, pipeline
families, out, auto_classes = {families!r}, {out!r}, {auto_classes!r}
summary = {{}}
for family in families:
    repo = "alice/tiny-" + family
    auto = getattr(transformers, auto_classes.get(family, "AutoModelForCausalLM"))
    model = auto.from_pretrained(repo, trust_remote_code=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(repo, trust_remote_code=True)
    input_ids = torch.tensor({probe!r})
    with torch.no_grad():
        if family == "seq2seq":
            logits = model(input_ids=input_ids, decoder_input_ids=input_ids[:, :4]).logits
            generated = model.generate(**tokenizer("To be", return_tensors="pt"), max_new_tokens=5, do_sample=False)
            text = tokenizer.decode(generated[0], skip_special_tokens=True)
        elif family == "classifier":
            logits = model(input_ids=input_ids).logits
            classifier = pipeline("text-classification", model=repo, trust_remote_code=True)
            text = classifier("To be, or not to be")[0]["label"]
        else:
            logits = model(input_ids=input_ids).logits
            generator = pipeline("text-generation", model=repo, trust_remote_code=True)
            text = generator("To be", max_new_tokens=5, do_sample=False)[0]["generated_text"]
    torch.save(logits, out + "/" + family + ".pt")
    summary[family] = {{"module": type(model).__module__, "text": text, "tokens": len(tokenizer)}}
print("SUMMARY " + json.dumps(summary))
"""


@pytest.fixture(scope="module")
def pushed(hub, tiny_tokenizer_path, tmp_path_factory):
    """Push every available family with the CLI, then load them all back in one isolated interpreter."""
    root = tmp_path_factory.mktemp("models")
    results = {}
    for family in AVAILABLE:
        folder, logits = _model_folder(root, family, tiny_tokenizer_path)
        results[family] = {"folder": folder, "logits": logits}
    first = str(results[AVAILABLE[0]]["folder"])
    bad_card = root / "bad-card"
    shutil.copytree(first, bad_card)
    (bad_card / "README.md").write_text("---\nlicense: [1, 2]\n---\n# A hand-written card\n")
    calls = [
        ["push", "--model_path", str(results[family]["folder"]), "--repo_id", f"alice/tiny-{family}"]
        for family in AVAILABLE
    ]
    calls += [
        ["push", "--model_path", first, "--repo_id", "alice/private-dev", "--private", "--revision", "dev",
         "--commit_message", "first cut", "--license", "mit", "--datasets", "bob/shakespeare"],
        ["push", "--model_path", first, "--repo_id", "alice/wrong-token", "--token", WRONG_TOKEN],
        ["push", "--model_path", first, "--repo_id", "bob/not-yours"],
        ["push", "--model_path", str(bad_card), "--repo_id", "alice/bad-card"],
        ["push", "--model_path", first, "--repo_id", "alice/commit-fails"],
    ]  # fmt: skip
    hub.server.reject_commits_to.add("alice/commit-fails")
    processes = hub.cli_many(*calls)
    for family, process in zip(AVAILABLE, processes):
        results[family]["push"] = process
    out = tmp_path_factory.mktemp("loaded")
    pushed_ok = [family for family in AVAILABLE if results[family]["push"].returncode == 0]
    load = hub.run_isolated(
        _LOAD_SCRIPT.format(families=pushed_ok, out=str(out), probe=PROBE_IDS, auto_classes=AUTO_CLASSES)
    )
    summary = {}
    for line in load.stdout.splitlines():
        if line.startswith("SUMMARY "):
            summary = json.loads(line[len("SUMMARY ") :])
    private, wrong_token, not_yours, bad_card_push, commit_fails = processes[len(AVAILABLE) :]
    return {
        "families": results,
        "load": load,
        "summary": summary,
        "out": out,
        "private": private,
        "wrong_token": wrong_token,
        "not_yours": not_yours,
        "bad_card": bad_card_push,
        "commit_fails": commit_fails,
    }


@pytest.mark.slow
@pytest.mark.parametrize("family", AVAILABLE)
def test_push_uploads_everything_in_one_commit(hub, pushed, family):
    process = pushed["families"][family]["push"]
    assert process.returncode == 0, process.stderr
    assert f"alice/tiny-{family}" in process.stdout
    assert f"load it with {AUTO_CLASSES.get(family, 'AutoModelForCausalLM')}.from_pretrained" in process.stdout
    repo_id = f"alice/tiny-{family}"
    files = hub.server.files(repo_id)
    config = json.loads(files["config.json"])
    modules = {reference.split(".")[0] for reference in config["auto_map"].values()}
    expected = {
        "README.md",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "trainer_state.json",
        "all_results.json",
        "loss_curves.png",
        *(f"{module}.py" for module in modules),
    }
    assert expected <= set(files), expected - set(files)
    # A model that generates carries its generation config; a classifier has none to carry.
    assert ("generation_config.json" in files) == (family != "classifier")
    assert {name.split("_")[0] for name in files if name.endswith(".py")} == {"modeling", "configuration"}
    assert "training_args.bin" not in files
    pipeline_tags = {"seq2seq": "text2text-generation", "classifier": "text-classification"}
    assert ModelCard(files["README.md"].decode()).data.pipeline_tag == pipeline_tags.get(family, "text-generation")
    assert not any(name.startswith("checkpoint-") for name in files)
    # The repository's initial commit plus exactly one commit from push.
    assert hub.server.commit_count(repo_id) == 2


@pytest.mark.slow
@pytest.mark.parametrize("family", AVAILABLE)
def test_fresh_process_without_hf_textgen_loads_and_generates(pushed, family):
    load = pushed["load"]
    assert load.returncode == 0, load.stderr[-3000:]
    # With trust_remote_code=True the tokenizer reads the repository's config through its own code: transformers
    # has no reason to fall back to a bare PretrainedConfig and warn about the model type.
    assert "You are using a model of type" not in load.stderr, load.stderr[-3000:]
    summary = pushed["summary"][family]
    # The classes came from the repository's code (transformers' dynamic modules), not from an installed package.
    assert summary["module"].startswith("transformers_modules"), summary["module"]
    assert summary["tokens"] == 512
    if family == "classifier":
        assert summary["text"] in {"LABEL_0", "LABEL_1", "LABEL_2"}
    elif family != "seq2seq":
        assert summary["text"].startswith("To be")
    remote_logits = torch.load(pushed["out"] / f"{family}.pt")
    torch.testing.assert_close(remote_logits, pushed["families"][family]["logits"], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_token_is_never_uploaded_or_printed(hub, pushed):
    assert pushed["families"], "no model family is available yet"
    for family, result in pushed["families"].items():
        assert TOKEN not in result["push"].stdout + result["push"].stderr
        for path, content in hub.server.uploads[f"alice/tiny-{family}"].items():
            assert TOKEN.encode() not in content, f"{path} holds the token"


@pytest.mark.slow
def test_card_metadata_validates_and_carries_the_evaluation(hub, pushed):
    family = AVAILABLE[0]
    readme = hub.server.files(f"alice/tiny-{family}")["README.md"].decode()
    assert ("POST", "/api/validate-yaml") in hub.server.requests
    assert _validate_card_metadata(readme) == ([], [])
    card = ModelCard(readme)
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag in ("text-generation", "text2text-generation")
    perplexity = [result for result in card.data.eval_results if result.metric_type == "perplexity"]
    assert perplexity and perplexity[0].metric_value == pytest.approx(math.exp(6.0), rel=1e-4)
    assert f'repo_id = "alice/tiny-{family}"' in readme
    # The Hub's own metadata tooling can read and extend the card in place.
    update = hub.run_isolated(
        "from huggingface_hub import EvalResult, ModelCard, metadata_update\n"
        "from huggingface_hub.repocard_data import eval_results_to_model_index\n"
        "result = EvalResult(task_type='text-generation', dataset_type='text', dataset_name='held-out text',\n"
        "                    dataset_split='test', metric_type='perplexity', metric_value=99.0)\n"
        f"index = eval_results_to_model_index('tiny-{family}', [result])\n"
        f"metadata_update('alice/tiny-{family}', {{'model-index': index, 'tags': ['shakespeare']}},\n"
        f"                overwrite=True, token={TOKEN!r})\n"
        f"card = ModelCard.load('alice/tiny-{family}')\n"
        "print(card.data.tags, sorted((r.dataset_split, r.metric_type) for r in card.data.eval_results))\n",
        timeout=120,
    )
    assert update.returncode == 0, update.stderr[-2000:]
    assert "['shakespeare']" in update.stdout
    assert "('test', 'perplexity')" in update.stdout and "('validation', 'perplexity')" in update.stdout
    assert not hub.server.unhandled, hub.server.unhandled


@pytest.mark.slow
def test_private_push_to_a_branch(hub, pushed):
    process = pushed["private"]
    assert process.returncode == 0, process.stderr
    repo = hub.server.state.repos["alice/private-dev"]
    assert repo.private
    assert set(hub.server.files("alice/private-dev", "main")) == {".gitattributes"}
    assert "model.safetensors" in hub.server.files("alice/private-dev", "dev")
    assert repo.commits[repo.branches["dev"]].title == "first cut"
    card = ModelCard(hub.server.files("alice/private-dev", "dev")["README.md"].decode())
    assert card.data.license == "mit" and card.data.datasets == ["bob/shakespeare"]
    # Nobody else sees a private repository.
    other_user = hub.run_isolated(
        "from huggingface_hub import HfApi\n"
        "from huggingface_hub.errors import RepositoryNotFoundError\n"
        "try:\n"
        "    HfApi().model_info('alice/private-dev')\n"
        "except RepositoryNotFoundError:\n"
        "    print('HIDDEN')\n",
        token=OTHER_TOKEN,
        timeout=120,
    )
    assert "HIDDEN" in other_user.stdout, other_user.stderr[-2000:]


# -- bad input: one `error:` line, exit status 2, nothing on the Hub -------------------------------------------------


def _error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    return lines[0]


def test_missing_flag(capsys):
    assert run_command(push_main, ["--model_path", "somewhere"]) == 2
    assert _error_line(capsys) == "error: the following arguments are required: --repo_id (see hf-textgen push --help)"


def test_missing_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert run_command(push_main, ["--model_path", str(tmp_path / "nope"), "--repo_id", "alice/x"]) == 2
    assert "does not exist" in _error_line(capsys)


def test_folder_that_is_not_a_model(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    (tmp_path / "notes.txt").write_text("hello")
    assert run_command(push_main, ["--model_path", str(tmp_path), "--repo_id", "alice/x"]) == 2
    assert "no config.json" in _error_line(capsys)
    assert run_command(push_main, ["--model_path", str(tmp_path / "notes.txt"), "--repo_id", "alice/x"]) == 2
    assert "notes.txt is not a folder" in _error_line(capsys)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": 5}))
    assert run_command(push_main, ["--model_path", str(tmp_path), "--repo_id", "alice/x"]) == 2
    assert "has no model_type" in _error_line(capsys)


def test_model_without_weights_or_tokenizer(tmp_path, capsys, monkeypatch, tiny_tokenizer_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    model = _build_model(AVAILABLE[0])
    model.config.save_pretrained(tmp_path)
    assert run_command(push_main, ["--model_path", str(tmp_path), "--repo_id", "alice/x"]) == 2
    assert "no safetensors weights" in _error_line(capsys)
    model.save_pretrained(tmp_path)
    capsys.readouterr()  # the progress bar of save_pretrained
    assert run_command(push_main, ["--model_path", str(tmp_path), "--repo_id", "alice/x"]) == 2
    assert "no tokenizer" in _error_line(capsys)


@pytest.mark.parametrize("repo_id", ["no-namespace", "alice/bad name", "alice/x/y", "alice/--x"])
def test_malformed_repo_id(tmp_path, capsys, monkeypatch, repo_id):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert run_command(push_main, ["--model_path", str(tmp_path), "--repo_id", repo_id]) == 2
    assert "--repo_id" in _error_line(capsys)


def test_no_token(tmp_path, capsys, monkeypatch, tiny_tokenizer_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    folder, _ = _model_folder(tmp_path, AVAILABLE[0], tiny_tokenizer_path)
    capsys.readouterr()
    assert run_command(push_main, ["--model_path", str(folder), "--repo_id", "alice/x"]) == 2
    assert "no Hugging Face token" in _error_line(capsys)


def test_readme_that_is_not_utf8(tmp_path, capsys, monkeypatch, tiny_tokenizer_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder, _ = _model_folder(tmp_path, AVAILABLE[0], tiny_tokenizer_path)
    capsys.readouterr()
    (folder / "README.md").write_bytes(b"\xff\xfe a card in UTF-16")
    assert run_command(push_main, ["--model_path", str(folder), "--repo_id", "alice/x"]) == 2
    assert "README.md is not UTF-8" in _error_line(capsys)


def test_refuses_a_folder_holding_the_token(tmp_path, capsys, monkeypatch, tiny_tokenizer_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder, _ = _model_folder(tmp_path, AVAILABLE[0], tiny_tokenizer_path)
    capsys.readouterr()
    (folder / "notes.json").write_text(json.dumps({"hub_token": TOKEN}))
    assert run_command(push_main, ["--model_path", str(folder), "--repo_id", "alice/x"]) == 2
    line = _error_line(capsys)
    assert "notes.json contains your Hub token" in line and TOKEN not in line


@pytest.mark.slow
def test_hub_refusals_push_nothing(hub, pushed):
    for process, message in (
        (pushed["wrong_token"], "rejected the token"),
        (pushed["not_yours"], "may not write to bob/not-yours"),
        (pushed["bad_card"], 'the Hub rejected the model card metadata: "license" must be a string'),
        (pushed["commit_fails"], "the Hub refused the push to alice/commit-fails"),
    ):
        lines = process.stderr.strip().splitlines()
        assert process.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), process.stderr
        assert message in lines[0]
        assert TOKEN not in process.stderr + process.stdout and WRONG_TOKEN not in process.stderr + process.stdout
    # A commit that fails after the repository was created takes the new, empty repository away with it.
    assert {("POST", "/api/repos/create"), ("DELETE", "/api/repos/delete")} <= set(hub.server.requests)
    refused = {"alice/wrong-token", "bob/not-yours", "alice/bad-card", "alice/commit-fails"}
    assert not refused & set(hub.server.state.repos)


@pytest.mark.slow
def test_unreachable_endpoint_through_the_script(hub, tmp_path, tiny_tokenizer_path):
    folder, _ = _model_folder(tmp_path, AVAILABLE[0], tiny_tokenizer_path)
    process = hub.push("--model_path", str(folder), "--repo_id", "alice/unreachable", HF_ENDPOINT="http://127.0.0.1:9")
    lines = process.stderr.strip().splitlines()
    assert process.returncode == 2 and len(lines) == 1, process.stderr
    assert lines[0].startswith("error: cannot reach the Hub at http://127.0.0.1:9")
    assert "alice/unreachable" not in hub.server.state.repos
