"""Opt-in: push to the real Hugging Face Hub and load back without hf_textgen.

Runs only with `HF_TOKEN` (a write token) and `HF_TEXTGEN_TEST_REAL_HUB=1` set; it creates a private repository
`<you>/hf-textgen-test-<random>` and deletes it afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import uuid

import pytest
import torch
from hub_testing import _ISOLATED_BOOTSTRAP, REPO_ROOT

pytestmark = pytest.mark.skipif(
    not (os.environ.get("HF_TOKEN") and os.environ.get("HF_TEXTGEN_TEST_REAL_HUB") == "1"),
    reason="talks to the real Hub: set HF_TOKEN and HF_TEXTGEN_TEST_REAL_HUB=1 to run it",
)


def _run(args: list[str], tmp_path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.endswith("_OFFLINE")}
    env["HF_HOME"] = str(tmp_path / f"home-{uuid.uuid4().hex[:6]}")
    return subprocess.run(
        [sys.executable, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path
    )


def test_push_and_load_from_the_real_hub(tmp_path, tiny_tokenizer_path):
    from transformers import AutoTokenizer

    import hf_textgen

    config = hf_textgen.RNNConfig(vocab_size=512, hidden_size=32, num_hidden_layers=1)
    torch.manual_seed(0)
    model = hf_textgen.RNNForCausalLM(config).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_tokenizer_path).save_pretrained(folder)
    input_ids = torch.tensor([[1, 45, 97, 200, 13]])
    with torch.no_grad():
        expected = model(input_ids=input_ids).logits

    whoami = _run(["-c", "from huggingface_hub import whoami; print(whoami()['name'])"], tmp_path)
    assert whoami.returncode == 0, whoami.stderr[-2000:]
    repo_id = f"{whoami.stdout.strip()}/hf-textgen-test-{uuid.uuid4().hex[:8]}"
    try:
        push = _run(
            [str(REPO_ROOT / "scripts" / "push.py"), "--model_path", str(folder), "--repo_id", repo_id, "--private"],
            tmp_path,
        )
        assert push.returncode == 0, push.stderr[-2000:]
        assert os.environ["HF_TOKEN"] not in push.stdout + push.stderr
        paths = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
        load = _ISOLATED_BOOTSTRAP.format(paths=paths) + (
            "import json, torch\n"
            "from transformers import AutoModelForCausalLM, pipeline\n"
            f"model = AutoModelForCausalLM.from_pretrained({repo_id!r}, trust_remote_code=True).eval()\n"
            "with torch.no_grad():\n"
            f"    logits = model(input_ids=torch.tensor({input_ids.tolist()!r})).logits\n"
            f"generator = pipeline('text-generation', model={repo_id!r}, trust_remote_code=True)\n"
            "text = generator('To be', max_new_tokens=5, do_sample=False)[0]['generated_text']\n"
            "print('RESULT ' + json.dumps({'logits': logits.tolist(), 'text': text}))\n"
        )
        loaded = _run(["-I", "-S", "-c", load], tmp_path)
        assert loaded.returncode == 0, loaded.stderr[-2000:]
        result = json.loads(next(line for line in loaded.stdout.splitlines() if line.startswith("RESULT "))[7:])
        torch.testing.assert_close(torch.tensor(result["logits"]), expected, rtol=1e-5, atol=1e-5)
        assert result["text"].startswith("To be")
    finally:
        _run(["-c", f"from huggingface_hub import delete_repo; delete_repo({repo_id!r}, missing_ok=True)"], tmp_path)
