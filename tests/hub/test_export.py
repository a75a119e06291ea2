"""`hf-textgen export`: the Llama folder and the GGUF file, each checked by the tool that reads it.

- the Llama folder loads in a process where hf_textgen cannot be imported, with no remote code, to the same logits
  and the same token ids, and `transformers serve` (started as its users start it) answers `/v1/completions` with
  the greedy continuation transformers' `generate` gives;
- the GGUF file reads back through transformers' own GGUF loader (model and tokenizer) to the same logits and token
  ids, and carries the metadata llama.cpp needs (pre-tokenizer `llama-bpe`, no BOS added);
- every folder export cannot take ends in one `error:` line and writes nothing.
"""

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import gguf
import pytest
import torch
from hidden_hf_textgen import HIDE_HF_TEXTGEN
from huggingface_hub import metadata_load
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_textgen import cli
from hf_textgen.models import (
    RNNConfig,
    RNNForCausalLM,
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    TransformerConfig,
    TransformerForCausalLM,
    TransformerForSequenceClassification,
)

# Digits, line breaks, punctuation runs, an apostrophe and non-Latin text: every branch of the split pattern.
TEXT = "To be, or not to be: that is the question.\nWhether 'tis nobler in the mind, 1599 times -- 生存还是毁灭!"
PROMPT = "To be, or not to be"


def _transformer_config(tokenizer, **overrides) -> TransformerConfig:
    fields = {
        "vocab_size": len(tokenizer),
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,  # grouped attention: the GGUF q/k reordering differs for q and k
        "intermediate_size": 96,
        "max_position_embeddings": 128,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        # A wide initialisation, so an untrained model's greedy continuation varies from token to token.
        "initializer_range": 0.2,
    }
    return TransformerConfig(**{**fields, **overrides})


def _save(model, tokenizer, folder) -> str:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def transformer_folder(tmp_path_factory, tiny_tokenizer_path):
    """A saved Transformer causal LM (untied head, grouped attention) with its tokenizer and an eval result."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    torch.manual_seed(0)
    # A rotary base that is not the default, so a format that dropped it would change the logits.
    rope = {"rope_type": "default", "rope_theta": 500.0}
    model = TransformerForCausalLM(_transformer_config(tokenizer, tie_word_embeddings=False, rope_parameters=rope))
    folder = _save(model, tokenizer, tmp_path_factory.mktemp("transformer"))
    with open(os.path.join(folder, "eval_results.json"), "w") as handle:
        json.dump({"eval_loss": 5.5, "eval_perplexity": 244.7}, handle)
    # What pretraining records about its data (`hf_textgen.hub.training_facts`): the export card reuses it.
    facts = {"languages": ["zh", "en"], "prompt": "生存还是毁灭'"}
    Path(folder, "training_data.json").write_text(json.dumps(facts, ensure_ascii=False), encoding="utf-8")
    return folder


def _expected(folder: str) -> tuple[list[int], torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(TEXT).input_ids
    model = TransformerForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    return ids, logits


def _export(capsys, *argv) -> tuple[int, str, str]:
    status = cli.main(["export", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


# Runs with `python -I`: hf_textgen is made unimportable before transformers loads the folder, so only what
# transformers ships can be running. Prints the logits' largest difference and the token ids.
_PLAIN_LOAD_SCRIPT = HIDE_HF_TEXTGEN + textwrap.dedent(
    """\
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, expected_file, text = sys.argv[1:4]
    expected = load_file(expected_file)["logits"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    ids = tokenizer(text).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    print(json.dumps({
        "class": type(model).__name__,
        "module": type(model).__module__,
        "max_abs_diff": (logits - expected).abs().max().item(),
        "ids": ids,
        "hf_textgen_loaded": any(name.startswith("hf_textgen") for name in sys.modules),
    }))
    """
)


def test_llama_export_loads_without_hf_textgen(transformer_folder, tmp_path, capsys):
    from safetensors.torch import save_file

    output = tmp_path / "llama"
    status, out, err = _export(
        capsys, "--model_name_or_path", transformer_folder, "--format", "llama", "--output_dir", str(output)
    )
    assert status == 0, err
    assert str(output) in out

    config = json.loads((output / "config.json").read_text())
    assert config["model_type"] == "llama" and config["architectures"] == ["LlamaForCausalLM"]
    assert "auto_map" not in config and not list(output.glob("*.py"))
    # transformers 4.x readers (TGI) find the rotary base at the top level.
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 500.0
    tokenizer_config = json.loads((output / "tokenizer_config.json").read_text())
    assert tokenizer_config["add_bos_token"] is False and tokenizer_config["add_eos_token"] is False
    card = (output / "README.md").read_text()
    assert "LlamaForCausalLM" in card and "244.7" in card
    # The usage prompt and the language are the source model's training facts, not a fixed English line.
    facts = json.loads((Path(transformer_folder) / "training_data.json").read_text(encoding="utf-8"))
    assert f"tokenizer({json.dumps(facts['prompt'], ensure_ascii=False)}" in card
    assert metadata_load(output / "README.md").get("language") == facts["languages"]
    assert '-d \'{"prompt": "生存还是毁灭\\u0027", "max_tokens"' in card  # JSON in a single-quoted argument
    generation = json.loads((output / "generation_config.json").read_text())
    source = json.loads((Path(transformer_folder) / "config.json").read_text())
    assert (generation["eos_token_id"], generation["pad_token_id"]) == (source["eos_token_id"], source["pad_token_id"])

    ids, logits = _expected(transformer_folder)
    save_file({"logits": logits.contiguous()}, str(tmp_path / "expected.safetensors"))
    result = subprocess.run(
        [sys.executable, "-I", "-c", _PLAIN_LOAD_SCRIPT, str(output), str(tmp_path / "expected.safetensors"), TEXT],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["class"] == "LlamaForCausalLM" and report["module"].startswith("transformers.models.llama")
    assert not report["hf_textgen_loaded"]
    assert report["ids"] == ids
    assert report["max_abs_diff"] < 1e-5


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post_json(url: str, body: dict, timeout: float) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def _transformers_serve(folder, log_path, startup_timeout: float = 240):
    """`transformers serve FOLDER` on a free local port, as its users start it; yields the base URL, then stops it.

    The console script is `transformers`; `-m transformers.cli.transformers` runs the same entry point with this
    interpreter.
    """
    port = _free_port()
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "transformers.cli.transformers", "serve", str(folder)]
            + ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            deadline = time.monotonic() + startup_timeout
            while True:
                assert server.poll() is None, Path(log_path).read_text()[-3000:]
                assert time.monotonic() < deadline, f"transformers serve did not answer within {startup_timeout} s"
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=5):
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.5)
            yield f"http://127.0.0.1:{port}"
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


@pytest.mark.slow
def test_llama_export_serves_with_transformers_serve(transformer_folder, tmp_path, capsys):
    output = tmp_path / "llama"
    status, _, err = _export(
        capsys, "--model_name_or_path", transformer_folder, "--format", "llama", "--output_dir", str(output)
    )
    assert status == 0, err
    max_tokens = 12
    tokenizer = AutoTokenizer.from_pretrained(output)
    model = AutoModelForCausalLM.from_pretrained(output).eval()
    inputs = tokenizer(PROMPT, return_tensors="pt")
    with torch.no_grad():
        generated = model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False)
    expected = tokenizer.decode(generated[0, inputs.input_ids.shape[1] :], skip_special_tokens=True)
    assert len(set(generated[0, inputs.input_ids.shape[1] :].tolist())) > 1  # a continuation worth comparing

    with _transformers_serve(output, tmp_path / "serve.log") as url:
        body = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0}
        answer = _post_json(f"{url}/v1/completions", body, timeout=120)
    assert answer["choices"][0]["text"] == expected
    assert answer["usage"]["prompt_tokens"] == inputs.input_ids.shape[1]


def _gguf_field(reader: gguf.GGUFReader, key: str):
    return reader.get_field(key).contents()


def _rounded_llama_logits(folder: str, ids: list[int], outtype: str) -> torch.Tensor:
    """The logits of the model with every 2-D weight rounded to `outtype` and back by the gguf package itself."""
    qtype = {"f16": gguf.GGMLQuantizationType.F16, "q8_0": gguf.GGMLQuantizationType.Q8_0}[outtype]
    llama = TransformerForCausalLM.from_pretrained(folder).to_llama()
    with torch.no_grad():
        for param in llama.parameters():
            if param.ndim == 2:
                rounded = gguf.quants.dequantize(gguf.quants.quantize(param.numpy(), qtype), qtype)
                param.copy_(torch.from_numpy(rounded.reshape(param.shape)))
        return llama(torch.tensor([ids])).logits


@pytest.mark.parametrize("outtype", [None, "f16", "q8_0"])
def test_gguf_export_reads_back_in_transformers(transformer_folder, tmp_path, capsys, outtype):
    output = tmp_path / "gguf"
    argv = ["--model_name_or_path", transformer_folder, "--format", "gguf", "--output_dir", str(output)]
    status, out, err = _export(capsys, *argv, *(["--outtype", outtype] if outtype else []))
    assert status == 0, err
    assert "llama-bpe" in out
    assert sorted(path.name for path in output.iterdir()) == ["model.gguf"]

    reader = gguf.GGUFReader(output / "model.gguf")
    source = json.loads((Path(transformer_folder) / "config.json").read_text())
    assert _gguf_field(reader, "general.architecture") == "llama"
    assert _gguf_field(reader, "tokenizer.ggml.model") == "gpt2"
    assert _gguf_field(reader, "tokenizer.ggml.pre") == "llama-bpe"
    assert _gguf_field(reader, "tokenizer.ggml.add_bos_token") is False
    assert _gguf_field(reader, "tokenizer.ggml.eos_token_id") == source["eos_token_id"]
    assert _gguf_field(reader, "tokenizer.ggml.padding_token_id") == source["pad_token_id"]
    assert _gguf_field(reader, "llama.attention.head_count_kv") == source["num_key_value_heads"]
    assert _gguf_field(reader, "llama.rope.freq_base") == 500.0

    ids, expected = _expected(transformer_folder)
    if outtype is not None:
        # Rounding changes the function a little; the file must hold exactly the rounded weights.
        expected = _rounded_llama_logits(transformer_folder, ids, outtype)
    tokenizer = AutoTokenizer.from_pretrained(output, gguf_file="model.gguf")
    assert tokenizer(TEXT).input_ids == ids
    assert tokenizer.decode(ids) == TEXT
    model = AutoModelForCausalLM.from_pretrained(output, gguf_file="model.gguf").eval()
    assert type(model).__name__ == "LlamaForCausalLM"
    assert not model.config.tie_word_embeddings  # the untied head was written as `output.weight`
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits
    assert (logits - expected).abs().max().item() < 1e-5


def test_gguf_export_of_a_tied_model(tmp_path, tiny_tokenizer_path, capsys):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    torch.manual_seed(1)
    # A vocabulary larger than the tokenizer's: the spare rows become llama.cpp's unused `[PAD<id>]` tokens.
    model = TransformerForCausalLM(_transformer_config(tokenizer, vocab_size=len(tokenizer) + 8)).eval()
    folder = _save(model, tokenizer, tmp_path / "tied")
    output = tmp_path / "gguf"
    argv = ["--model_name_or_path", folder, "--format", "gguf", "--output_dir", str(output)]
    status, _, err = _export(capsys, *argv)
    assert status == 0, err
    reader = gguf.GGUFReader(output / "model.gguf")
    assert "output.weight" not in [tensor.name for tensor in reader.tensors]
    assert len(_gguf_field(reader, "tokenizer.ggml.tokens")) == model.config.vocab_size
    gguf_model = AutoModelForCausalLM.from_pretrained(output, gguf_file="model.gguf").eval()
    ids = torch.tensor([tokenizer(TEXT).input_ids])
    with torch.no_grad():
        assert (gguf_model(ids).logits - model(ids).logits).abs().max().item() < 1e-5


def _refused(capsys, output, *argv) -> str:
    status, _, err = _export(capsys, *argv, "--output_dir", str(output))
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert status == 2, err
    assert len(error_lines) == 1 and "Traceback" not in err, err
    assert not output.exists()
    return error_lines[0]


@pytest.mark.parametrize("export_format", ["llama", "gguf"])
def test_rnn_and_seq2seq_folders_are_refused(tmp_path, tiny_tokenizer, capsys, export_format):
    rnn = RNNForCausalLM(RNNConfig(vocab_size=len(tiny_tokenizer), hidden_size=16, num_hidden_layers=1))
    seq2seq = Seq2SeqTransformerForConditionalGeneration(
        Seq2SeqTransformerConfig(
            vocab_size=len(tiny_tokenizer),
            hidden_size=16,
            num_attention_heads=2,
            encoder_layers=1,
            decoder_layers=1,
            intermediate_size=32,
        )
    )
    for name, model, expected in (("rnn", rnn, "an RNN"), ("seq2seq", seq2seq, "an encoder-decoder")):
        folder = _save(model, tiny_tokenizer, tmp_path / name)
        line = _refused(capsys, tmp_path / f"out_{name}", "--model_name_or_path", folder, "--format", export_format)
        assert expected in line and "trust_remote_code" in line


def test_other_bad_input_is_refused(tmp_path, tiny_tokenizer, transformer_folder, capsys):
    missing = tmp_path / "missing"
    line = _refused(capsys, tmp_path / "out", "--model_name_or_path", str(missing), "--format", "llama")
    assert "does not exist" in line

    classifier = TransformerForSequenceClassification(_transformer_config(tiny_tokenizer, num_labels=2))
    folder = _save(classifier, tiny_tokenizer, tmp_path / "classifier")
    line = _refused(capsys, tmp_path / "out", "--model_name_or_path", folder, "--format", "llama")
    assert "TransformerForSequenceClassification" in line

    line = _refused(
        capsys, tmp_path / "out", "--model_name_or_path", transformer_folder, "--format", "llama", "--outtype", "f16"
    )
    assert "--outtype" in line

    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "keep.txt").write_text("mine")
    status, _, err = _export(
        capsys, "--model_name_or_path", transformer_folder, "--format", "llama", "--output_dir", str(occupied)
    )
    assert status == 2 and "already holds files" in err
    assert sorted(path.name for path in occupied.iterdir()) == ["keep.txt"]


def test_gguf_export_refuses_a_tokenizer_llama_cpp_cannot_reproduce(tmp_path, tiny_corpus_dir, capsys):
    from hf_textgen.data import train_tokenizer

    with open(os.path.join(tiny_corpus_dir, "train.txt"), encoding="utf-8") as handle:
        char_tokenizer = train_tokenizer(handle.read().splitlines(keepends=True), "char", vocab_size=None)
    torch.manual_seed(0)
    model = TransformerForCausalLM(_transformer_config(char_tokenizer))
    folder = _save(model, char_tokenizer, tmp_path / "char")
    line = _refused(capsys, tmp_path / "out", "--model_name_or_path", folder, "--format", "gguf")
    assert "byte-level BPE" in line and "--format llama" in line


def test_packaged_export_card_template_is_the_repository_template():
    from hf_textgen.hub import model_card

    canonical = Path(__file__).resolve().parents[2] / "model_cards" / "llama_export_model_card.md"
    assert model_card.EXPORT_TEMPLATE_PATH.read_text() == canonical.read_text(), (
        "src/hf_textgen/hub/templates/ must mirror model_cards/: cp model_cards/*.md src/hf_textgen/hub/templates/"
    )


def test_script_entry_point_runs_the_command(tmp_path):
    script = Path(__file__).resolve().parents[2] / "scripts" / "export.py"
    argv = ["--model_name_or_path", str(tmp_path / "missing"), "--format", "gguf", "--output_dir", str(tmp_path / "o")]
    result = subprocess.run([sys.executable, str(script), *argv], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        f"error: model folder {tmp_path / 'missing'} does not exist; pass a folder written by pretrain or finetune"
    ]
    assert not (tmp_path / "o").exists()
