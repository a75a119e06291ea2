"""`hf-textgen generate` and `hf_textgen.generation` on tiny saved models of every family."""

import io
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, TextStreamer, set_seed

from hf_textgen import (
    RNNConfig,
    RNNForCausalLM,
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    TransformerConfig,
    TransformerForCausalLM,
)
from hf_textgen.cli import main as cli_main
from hf_textgen.data import train_tokenizer
from hf_textgen.generation import (
    default_generation_settings,
    load_model_and_tokenizer,
    prepare_prompt,
    set_default_generation_config,
)

CONTEXT = 64
ENGLISH = "To be, or not to be"
CHINESE = "生存还是毁灭，这是一个问题"


def _special_ids(tokenizer):
    return {
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def _build(family, tokenizer):
    torch.manual_seed(0)
    if family == "rnn":
        return RNNForCausalLM(RNNConfig(hidden_size=32, num_hidden_layers=1, **_special_ids(tokenizer)))
    if family == "transformer":
        config = TransformerConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            max_position_embeddings=CONTEXT,
            **_special_ids(tokenizer),
        )
        return TransformerForCausalLM(config)
    config = Seq2SeqTransformerConfig(
        hidden_size=32,
        intermediate_size=64,
        encoder_layers=1,
        decoder_layers=1,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT,
        decoder_start_token_id=tokenizer.bos_token_id,
        **_special_ids(tokenizer),
    )
    return Seq2SeqTransformerForConditionalGeneration(config)


@pytest.fixture(scope="module", params=["rnn", "transformer", "seq2seq"])
def model_dir(request, tiny_tokenizer_path, tmp_path_factory):
    """A saved tiny model of each family with its tokenizer and the default generation settings."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    model = _build(request.param, tokenizer)
    set_default_generation_config(model, tokenizer, max_new_tokens=12)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def transformer_dir(tiny_tokenizer_path, tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_path)
    folder = tmp_path_factory.mktemp("transformer_plain")
    _build("transformer", tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _generate(capsys, *argv):
    assert cli_main(["generate", *argv]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def _reference(folder, prompt, seed, **generation_kwargs):
    """Independent: the same generation through model.generate, decoded in one piece at the end."""
    model, tokenizer = load_model_and_tokenizer(folder)
    inputs = tokenizer(prompt, return_tensors="pt")
    set_seed(seed)
    output = model.generate(**inputs, **generation_kwargs)  # causal LM: prompt + continuation; seq2seq: output
    return tokenizer.decode(output[0], skip_special_tokens=True)


@pytest.mark.parametrize("prompt", [ENGLISH, CHINESE])
def test_streamed_text_equals_the_final_decoding(model_dir, prompt, capsys):
    out, _ = _generate(capsys, "--model_name_or_path", model_dir, "--prompt", prompt, "--seed", "7")
    expected = _reference(model_dir, prompt, seed=7)
    assert out == expected + "\n"
    if "seq2seq" not in model_dir:
        # A causal LM continues the prompt: it is printed first, whole (no character split).
        assert out.startswith(prompt)


def test_seed_makes_sampling_reproducible(model_dir, capsys):
    argv = ["--model_name_or_path", model_dir, "--prompt", ENGLISH, "--do_sample", "--top_k", "0"]
    first, _ = _generate(capsys, *argv, "--seed", "1")
    again, _ = _generate(capsys, *argv, "--seed", "1")
    others = {_generate(capsys, *argv, "--seed", str(seed))[0] for seed in (2, 3, 4)}
    assert first == again
    assert others - {first}, "different seeds should give different samples"


def test_beams_and_several_sequences_print_after(model_dir, capsys):
    out, _ = _generate(
        capsys,
        *("--model_name_or_path", model_dir, "--prompt", ENGLISH, "--do_sample", "false"),
        *("--num_beams", "3", "--num_return_sequences", "2", "--repetition_penalty", "1.3", "--max_new_tokens", "6"),
    )
    assert out.count("--- sequence ") == 2
    model, tokenizer = load_model_and_tokenizer(model_dir)
    inputs = tokenizer(ENGLISH, return_tensors="pt")
    beams = model.generate(
        **inputs, do_sample=False, num_beams=3, num_return_sequences=2, repetition_penalty=1.3, max_new_tokens=6
    )
    for text in tokenizer.batch_decode(beams, skip_special_tokens=True):
        assert text in out


def test_sampled_sequences_with_top_k_top_p(model_dir, capsys):
    out, _ = _generate(
        capsys,
        *("--model_name_or_path", model_dir, "--prompt", CHINESE, "--seed", "0"),
        *("--do_sample", "--temperature", "0.7", "--top_k", "20", "--top_p", "0.9", "--num_return_sequences", "3"),
    )
    assert "--- sequence 3 of 3 ---" in out


def test_prompt_from_standard_input(model_dir, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(ENGLISH + "\n"))
    from_stdin, _ = _generate(capsys, "--model_name_or_path", model_dir, "--seed", "3")
    from_flag, _ = _generate(capsys, "--model_name_or_path", model_dir, "--prompt", ENGLISH, "--seed", "3")
    assert from_stdin == from_flag


def test_overlong_prompt_is_cut_from_the_left_with_a_warning(model_dir, tiny_tokenizer, capsys):
    long_prompt = " ".join(["Once upon a midnight dreary"] * 40) + " while I pondered"
    assert len(tiny_tokenizer(long_prompt)["input_ids"]) > CONTEXT
    out, err = _generate(capsys, "--model_name_or_path", model_dir, "--prompt", long_prompt, "--do_sample", "false")
    if "rnn" in model_dir:
        # An RNN has no context limit: nothing is cut.
        assert "warning" not in err
        assert out.startswith(long_prompt)
        return
    assert "warning: the prompt is longer than the model's context" in err
    if "seq2seq" not in model_dir:
        # The most recent text is kept: the printed prompt is a suffix of the original.
        printed_prompt = out[: out.index("while I pondered") + len("while I pondered")]
        assert long_prompt.endswith(printed_prompt.lstrip("\ufffd"))
        assert len(printed_prompt) < len(long_prompt)


def test_prepare_prompt_keeps_the_most_recent_tokens(transformer_dir, tiny_tokenizer):
    model, tokenizer = load_model_and_tokenizer(transformer_dir)
    ids = tiny_tokenizer(ENGLISH * 20)["input_ids"]
    prepared = prepare_prompt(model, tokenizer, ENGLISH * 20, max_new_tokens=10)
    assert prepared.input_ids[0].tolist() == ids[-(CONTEXT - 10) :]
    assert prepared.num_dropped == len(ids) - (CONTEXT - 10)


def test_default_generation_config_is_saved(model_dir):
    config = json.loads(Path(model_dir, "generation_config.json").read_text())
    # The tiny tokenizer (512 tokens) counts as character-level-ish: no repetition penalty.
    assert {k: config[k] for k in ("do_sample", "temperature", "top_k", "top_p")} == {
        "do_sample": True,
        "temperature": 0.8,
        "top_k": 50,
        "top_p": 0.95,
    }
    assert config["max_new_tokens"] == 12
    assert config["eos_token_id"] == 2 and config["pad_token_id"] == 0
    if "seq2seq" in model_dir:
        assert config["decoder_start_token_id"] == 1


def test_default_settings_by_vocabulary_size():
    assert default_generation_settings(65)["repetition_penalty"] == 1.0
    assert default_generation_settings(4096)["repetition_penalty"] > 1.0


def test_greedy_default_drops_sampling_knobs(tiny_tokenizer):
    model = _build("transformer", tiny_tokenizer)
    config = set_default_generation_config(model, tiny_tokenizer, do_sample=False, num_beams=2)
    assert config.do_sample is False and config.num_beams == 2 and config.temperature is None
    with pytest.raises(ValueError, match="max_new_tokens"):
        set_default_generation_config(model, tiny_tokenizer, max_new_tokens=0)


def test_model_without_saved_defaults_still_generates_enough(transformer_dir, capsys):
    out, _ = _generate(capsys, "--model_name_or_path", transformer_dir, "--prompt", ENGLISH, "--do_sample", "false")
    assert out.startswith(ENGLISH) and len(out) > len(ENGLISH)


class _Recorder(TextStreamer):
    def __init__(self, tokenizer):
        super().__init__(tokenizer, skip_special_tokens=True)
        self.chunks = []

    def on_finalized_text(self, text, stream_end=False):
        self.chunks.append(text)


def test_streamer_never_splits_a_multibyte_character(tiny_tokenizer):
    # The tiny byte-level BPE never saw Chinese: each character is three byte tokens, fed one at a time.
    text = CHINESE + " and 😀 émigré"
    ids = tiny_tokenizer(text)["input_ids"]
    assert len(ids) > len(text)
    streamer = _Recorder(tiny_tokenizer)
    for token in ids:
        streamer.put(torch.tensor([token]))
    streamer.end()
    assert all("\ufffd" not in chunk for chunk in streamer.chunks)
    assert "".join(streamer.chunks) == text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model_name_or_path", "missing_folder", "--prompt", "hi"], "does not exist"),
        (["--prompt", "hi"], "--model_name_or_path"),
        (["--model_name_or_path", "{model}", "--prompt", ""], "prompt is empty"),
        (["--model_name_or_path", "{model}", "--prompt", "   "], "prompt is empty"),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--temperature", "-1"], "--temperature"),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--top_p", "1.5"], "--top_p"),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--num_beams", "0"], "--num_beams"),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--max_new_tokens", "x"], "--max_new_tokens"),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--do_sample", "maybe"], "--do_sample"),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--max_new_tokens", "500"], "context"),
        (
            [
                "--model_name_or_path",
                "{model}",
                "--prompt",
                "hi",
                "--do_sample",
                "false",
                "--num_return_sequences",
                "2",
            ],
            "num_return_sequences 2 needs sampling",
        ),
        (["--model_name_or_path", "{model}", "--prompt", "hi", "--bogus"], "unrecognized"),
    ],
)
def test_bad_input_is_one_clear_line(transformer_dir, argv, message, capsys):
    argv = [arg.replace("{model}", transformer_dir) for arg in argv]
    assert cli_main(["generate", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and message in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_missing_or_mismatched_tokenizer_is_one_clear_line(tiny_tokenizer, tiny_tokenizer_path, tmp_path, capsys):
    config = TransformerConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT,
        **{**_special_ids(tiny_tokenizer), "vocab_size": 300},
    )
    TransformerForCausalLM(config).save_pretrained(tmp_path)  # no tokenizer saved beside it
    assert cli_main(["generate", "--model_name_or_path", str(tmp_path), "--prompt", "hi"]) == 2
    assert "--tokenizer_name" in capsys.readouterr().err
    argv = ["--model_name_or_path", str(tmp_path), "--tokenizer_name", tiny_tokenizer_path, "--prompt", "hi"]
    assert cli_main(["generate", *argv]) == 2
    err = capsys.readouterr().err
    assert "512 tokens" in err and "only 300" in err


def test_prompt_outside_a_character_vocabulary_is_shown_verbatim(tmp_path, capsys):
    # A character-level model trained on English reads Chinese as <unk>: the user still sees their prompt.
    tokenizer = train_tokenizer(iter(["To be, or not to be: that is the question.\n"] * 3), "char", vocab_size=None)
    model = _build("transformer", tokenizer)
    set_default_generation_config(model, tokenizer, max_new_tokens=8)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    out, err = _generate(capsys, "--model_name_or_path", str(tmp_path), "--prompt", CHINESE + " to be", "--seed", "0")
    assert out.startswith(CHINESE + " to be")
    assert f"{len(CHINESE)} prompt token(s) are not in the model's vocabulary" in err
