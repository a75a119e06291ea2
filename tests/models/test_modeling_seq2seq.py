"""The encoder-decoder Transformer: config, forward, tying, cache, generation equivalences, saving, remote code.

Generation tests run on a model whose weights are re-drawn large and whose output layer is untied: a freshly
initialised encoder-decoder barely listens to its source and greedily repeats one token, which would make
"cached == uncached" and "padded == unpadded" pass for the wrong reason. The re-drawn model's outputs vary per
step and depend on the source (asserted in `test_generation_fixture_is_not_degenerate`).
"""

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, DataCollatorForSeq2Seq

import hf_textgen  # noqa: F401  (registers the Auto classes)
from hf_textgen.models.seq2seq import (
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    Seq2SeqTransformerModel,
)
from hf_textgen.models.seq2seq.modeling_seq2seq import shift_tokens_right

VOCAB_SIZE = 99
ATOL = 1e-5


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # These models are tiny: on a shared CPU, thread hand-offs cost more than the maths (10x slower with 2).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(**overrides) -> Seq2SeqTransformerConfig:
    fields = {
        "vocab_size": VOCAB_SIZE,
        "hidden_size": 32,
        "num_attention_heads": 4,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        "dropout": 0.0,
    }
    return Seq2SeqTransformerConfig(**{**fields, **overrides})


def make_model(seed: int = 0, **overrides) -> Seq2SeqTransformerForConditionalGeneration:
    torch.manual_seed(seed)
    return Seq2SeqTransformerForConditionalGeneration(tiny_config(**overrides)).eval()


def make_generation_model(seed: int = 0, **overrides) -> Seq2SeqTransformerForConditionalGeneration:
    """An untied model with large random weights, whose greedy outputs vary and depend on the source."""
    model = make_model(seed, tie_word_embeddings=False, **overrides)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() != 2:  # biases and norms keep their init: a large bias swamps every position
                continue
            std = 0.3 if name.endswith("shared.weight") else 1.5 / parameter.shape[1] ** 0.5
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    return model


def random_ids(batch_size: int, length: int, seed: int = 0) -> torch.LongTensor:
    """Ids above the special tokens (pad 0, bos 1, eos 2), so no source token is padding."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(3, VOCAB_SIZE, (batch_size, length), generator=generator)


def generate(model, input_ids, attention_mask=None, **kwargs) -> torch.LongTensor:
    """`generate` that never stops early on EOS, so outputs compare token by token."""
    kwargs.setdefault("do_sample", False)
    kwargs.setdefault("max_new_tokens", 8)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    return model.generate(input_ids, attention_mask=attention_mask, eos_token_id=None, **kwargs)


# ------------------------------------------------------------------------------------------------------ config
def test_config_defaults_are_the_classic_base_model():
    config = Seq2SeqTransformerConfig()
    assert config.model_type == "hf_textgen_seq2seq"
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size) == (512, 8, 2048)
    assert (config.encoder_layers, config.decoder_layers, config.num_hidden_layers) == (6, 6, 6)
    assert config.is_encoder_decoder and config.tie_word_embeddings
    assert config.dropout == 0.1 and config.hidden_act == "relu"
    assert config.decoder_start_token_id == config.bos_token_id


def test_num_hidden_layers_sets_both_stacks_and_caches_follow_the_decoder():
    config = Seq2SeqTransformerConfig(num_hidden_layers=3)
    assert (config.encoder_layers, config.decoder_layers) == (3, 3)
    config.update_from_string("num_hidden_layers=2")  # the --config_overrides path
    assert (config.encoder_layers, config.decoder_layers) == (2, 2)
    uneven = Seq2SeqTransformerConfig(encoder_layers=1, decoder_layers=4)
    # Caches are sized from the decoder's text config.
    assert uneven.get_text_config(decoder=True).num_hidden_layers == 4
    assert (uneven.encoder_layers, uneven.decoder_layers) == (1, 4)
    # The shorthand wins over the per-stack fields given with it (a preset's, say).
    both = Seq2SeqTransformerConfig(num_hidden_layers=3, encoder_layers=2, decoder_layers=4)
    assert (both.encoder_layers, both.decoder_layers) == (3, 3)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size"),
        ({"num_attention_heads": 0}, "num_attention_heads"),
        ({"encoder_layers": 0}, "encoder_layers"),
        ({"decoder_layers": -1}, "decoder_layers"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_dropout": -0.1}, "attention_dropout"),
        ({"hidden_act": "nonsense"}, "hidden_act"),
        ({"pad_token_id": VOCAB_SIZE}, "pad_token_id"),
        ({"eos_token_id": 500}, "eos_token_id"),
        ({"decoder_start_token_id": None}, "decoder_start_token_id"),
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_config(**overrides)


# ------------------------------------------------------------------------------------------- forward, loss, ties
def test_forward_shapes_and_hidden_states():
    model = make_model()
    source, target = random_ids(2, 7), random_ids(2, 5, seed=1)
    with torch.no_grad():
        outputs = model(input_ids=source, decoder_input_ids=target, output_hidden_states=True)
    assert outputs.logits.shape == (2, 5, VOCAB_SIZE)
    assert outputs.encoder_last_hidden_state.shape == (2, 7, 32)
    assert len(outputs.encoder_hidden_states) == len(outputs.decoder_hidden_states) == 3
    with torch.no_grad():
        base = Seq2SeqTransformerModel(model.config).eval()(input_ids=source, decoder_input_ids=target)
    assert base.last_hidden_state.shape == (2, 5, 32)


def test_loss_is_cross_entropy_on_labels_with_shifted_decoder_inputs():
    model = make_model()
    source, labels = random_ids(2, 7), random_ids(2, 6, seed=1)
    labels[1, 4:] = -100  # padding of a shorter target
    decoder_input_ids = shift_tokens_right(labels, pad_token_id=0, decoder_start_token_id=1)
    assert decoder_input_ids[:, 0].tolist() == [1, 1]
    assert torch.equal(decoder_input_ids[0, 1:], labels[0, :-1])
    assert decoder_input_ids[1, 5].item() == 0  # a -100 read back as padding
    with torch.no_grad():
        outputs = model(input_ids=source, labels=labels)
        explicit = model(input_ids=source, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(outputs.logits, explicit)
    expected = torch.nn.functional.cross_entropy(explicit.view(-1, VOCAB_SIZE), labels.view(-1), ignore_index=-100)
    torch.testing.assert_close(outputs.loss, expected)
    # The Trainer's per-token normalisation across gradient-accumulation steps.
    with torch.no_grad():
        summed = model(input_ids=source, labels=labels, num_items_in_batch=22).loss
    torch.testing.assert_close(summed, expected * 10 / 22)


@pytest.mark.parametrize("tie", [True, False])
def test_source_and_target_share_one_embedding_output_layer_tied_on_request(tie):
    model = make_model(tie_word_embeddings=tie)
    shared = model.model.shared.weight
    assert model.model.encoder.embed_tokens.weight is shared
    assert model.model.decoder.embed_tokens.weight is shared
    assert (model.lm_head.weight is shared) is tie


def test_eager_and_sdpa_attention_agree_on_a_padded_batch():
    model = make_generation_model()
    source = random_ids(2, 7)
    attention_mask = torch.ones_like(source)
    attention_mask[1, 4:] = 0
    target = random_ids(2, 5, seed=1)
    with torch.no_grad():
        sdpa = model(input_ids=source, attention_mask=attention_mask, decoder_input_ids=target).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids=source, attention_mask=attention_mask, decoder_input_ids=target).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-4, rtol=1e-4)


def test_cached_decoding_matches_one_full_forward():
    model = make_generation_model()
    source, target = random_ids(2, 7), random_ids(2, 6, seed=1)
    with torch.no_grad():
        full = model(input_ids=source, decoder_input_ids=target, use_cache=False).logits
        step = model(input_ids=source, decoder_input_ids=target[:, :3], use_cache=True)
        encoder_outputs = (step.encoder_last_hidden_state,)
        pieces, cache = [step.logits], step.cache
        for position in range(3, 6):
            step = model(
                encoder_outputs=encoder_outputs,
                decoder_input_ids=target[:, position : position + 1],
                cache=cache,
                use_cache=True,
            )
            pieces.append(step.logits)
            cache = step.cache
    assert cache.get_seq_length() == 6
    assert cache.cross_attention_cache.get_seq_length() == 7  # the encoder states, projected once
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, atol=ATOL, rtol=1e-4)


def test_source_or_target_longer_than_the_model_takes_is_a_clear_error():
    model = make_model(max_position_embeddings=8)
    with pytest.raises(ValueError, match="source is 9 tokens long.*max_position_embeddings=8"):
        model(input_ids=random_ids(1, 9), decoder_input_ids=random_ids(1, 2))
    with pytest.raises(ValueError, match="target is 9 tokens long"):
        model(input_ids=random_ids(1, 3), decoder_input_ids=random_ids(1, 9))


# ------------------------------------------------------------------------------------------------- generation
def test_generation_fixture_is_not_degenerate():
    model = make_generation_model()
    source = random_ids(3, 6)
    generated = generate(model, source)
    assert len(set(generated[:, 1:].flatten().tolist())) > 4
    assert not torch.equal(generated, generate(model, source.flip(1)))


def test_greedy_cached_equals_uncached_equals_argmax_recomputation():
    model = make_generation_model()
    source = random_ids(2, 6)
    cached = generate(model, source, max_new_tokens=10)
    uncached = generate(model, source, max_new_tokens=10, use_cache=False)
    assert torch.equal(cached, uncached)
    # Reference: run the whole decoder prefix again at every step and take the argmax.
    sequences = torch.full((2, 1), model.config.decoder_start_token_id)
    for _ in range(10):
        with torch.no_grad():
            logits = model(input_ids=source, decoder_input_ids=sequences, use_cache=False).logits[:, -1]
        sequences = torch.cat([sequences, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, sequences)


@pytest.mark.parametrize("num_return_sequences", [1, 2])
def test_beam_search_cached_equals_uncached(num_return_sequences):
    model = make_generation_model()
    source = random_ids(2, 6)
    kwargs = {
        "num_beams": 3,
        "num_return_sequences": num_return_sequences,
        "max_new_tokens": 7,
        "return_dict_in_generate": True,
        "output_scores": True,
    }
    cached = generate(model, source, use_cache=True, **kwargs)
    uncached = generate(model, source, use_cache=False, **kwargs)
    assert cached.sequences.shape == (2 * num_return_sequences, 1 + 7)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=ATOL, rtol=1e-4)


@pytest.mark.parametrize(
    "sampling",
    [{"temperature": 0.7}, {"temperature": 1.3, "top_k": 20, "top_p": 0.9}],
    ids=["temperature", "top_k_top_p"],
)
def test_seeded_sampling_is_reproducible_with_and_without_cache(sampling):
    model = make_generation_model()
    source = random_ids(2, 6)

    def sample(**kwargs):
        torch.manual_seed(1234)
        return generate(model, source, do_sample=True, max_new_tokens=10, **sampling, **kwargs)

    first = sample()
    assert torch.equal(first, sample())
    assert torch.equal(first, sample(use_cache=False))
    torch.manual_seed(99)
    assert not torch.equal(first, generate(model, source, do_sample=True, max_new_tokens=10, temperature=1.5))


@pytest.mark.parametrize("side", ["right", "left"])
def test_padded_sources_give_what_unpadded_ones_give(side):
    model = make_generation_model()
    lengths = [3, 7, 5]
    rows = [random_ids(1, length, seed=index) for index, length in enumerate(lengths)]
    longest = max(lengths)
    input_ids = torch.zeros(len(rows), longest, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for index, row in enumerate(rows):
        span = slice(0, row.shape[1]) if side == "right" else slice(longest - row.shape[1], longest)
        input_ids[index, span] = row[0]
        attention_mask[index, span] = 1
    target = random_ids(3, 4, seed=9)
    with torch.no_grad():
        batch_logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=target).logits
    batched = generate(model, input_ids, attention_mask=attention_mask)
    for index, row in enumerate(rows):
        with torch.no_grad():
            alone_logits = model(input_ids=row, decoder_input_ids=target[index : index + 1]).logits
        torch.testing.assert_close(batch_logits[index : index + 1], alone_logits, atol=ATOL, rtol=1e-4)
        assert torch.equal(batched[index], generate(model, row)[0]), f"greedy, row {index}"
    # Beam search on the most padded row (the beams carry the padded encoder output and mask along).
    beams = generate(model, input_ids, attention_mask=attention_mask, num_beams=3)
    assert torch.equal(beams[0], generate(model, rows[0], num_beams=3)[0])


# ----------------------------------------------------------------------------------------------------- training
def test_few_optimizer_steps_lower_the_loss():
    model = make_model().train()
    source = random_ids(8, 6)
    labels = torch.cat([source.flip(1), torch.full((8, 1), 2)], dim=1)  # reverse, then EOS
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(25):
        loss = model(input_ids=source, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_untrained_tied_model_starts_near_uniform_loss():
    # A tied output layer reads the embedding of the token just fed in; without the small initial gain of the
    # decoder's last norm the untrained model would predict "repeat the input token" with a loss far above log(V).
    model = make_model(hidden_size=128, num_attention_heads=4)
    assert model.model.decoder.layer_norm.weight[0].item() == pytest.approx(128**-0.5)
    with torch.no_grad():
        loss = model(input_ids=random_ids(4, 6), labels=random_ids(4, 6, seed=1)).loss.item()
    assert abs(loss - math.log(VOCAB_SIZE)) < 0.5, loss


def test_gradients_reach_every_parameter():
    model = make_model(tie_word_embeddings=False).train()
    source, labels = random_ids(2, 6), random_ids(2, 5, seed=1)
    model(input_ids=source, labels=labels).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient for {name}"


def test_gradient_checkpointing_gives_the_same_gradients():
    source, labels = random_ids(2, 6), random_ids(2, 5, seed=1)
    gradients = []
    for checkpointing in (False, True):
        model = make_model().train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.decoder.layers[0].gradient_checkpointing
        model(input_ids=source, labels=labels).loss.backward()
        gradients.append({name: parameter.grad for name, parameter in model.named_parameters()})
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, msg=name)


def test_data_collator_builds_decoder_inputs_from_labels():
    model = make_model()

    class _PadOnlyTokenizer:  # DataCollatorForSeq2Seq only pads the source through the tokenizer
        pad_token_id = 0
        padding_side = "right"

        def pad(self, features, **kwargs):
            longest = max(len(feature["input_ids"]) for feature in features)
            ids = [f["input_ids"] + [0] * (longest - len(f["input_ids"])) for f in features]
            mask = [[1] * len(f["input_ids"]) + [0] * (longest - len(f["input_ids"])) for f in features]
            return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}

    collator = DataCollatorForSeq2Seq(_PadOnlyTokenizer(), model=model, label_pad_token_id=-100)
    batch = collator([{"input_ids": [5, 6, 7], "labels": [8, 9, 2]}, {"input_ids": [5], "labels": [4, 2]}])
    assert batch["labels"].tolist() == [[8, 9, 2], [4, 2, -100]]
    assert batch["decoder_input_ids"].tolist() == [[1, 8, 9], [1, 4, 2]]


# ------------------------------------------------------------------------------------ saving, Auto, remote code
@pytest.mark.parametrize("tie", [True, False])
def test_save_load_safetensors_identical_logits(tmp_path, tie):
    model = make_generation_model() if not tie else make_model()
    source, target = random_ids(2, 7), random_ids(2, 4, seed=1)
    model.save_pretrained(tmp_path)
    files = os.listdir(tmp_path)
    assert "model.safetensors" in files and "generation_config.json" in files
    assert not [name for name in files if name.endswith((".bin", ".pt", ".pth", ".pkl"))], files
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as handle:
        shapes = {key: handle.get_slice(key).get_shape() for key in handle.keys()}  # noqa: SIM118 (not a dict)
    vocab_matrices = [key for key, shape in shapes.items() if shape[0] == VOCAB_SIZE]
    assert sorted(vocab_matrices) == (["model.shared.weight"] if tie else ["lm_head.weight", "model.shared.weight"])
    with torch.no_grad():
        expected = model(input_ids=source, decoder_input_ids=target).logits
    for loader in (Seq2SeqTransformerForConditionalGeneration, AutoModelForSeq2SeqLM):
        reloaded = loader.from_pretrained(tmp_path).eval()
        assert type(reloaded) is Seq2SeqTransformerForConditionalGeneration
        assert reloaded.model.decoder.embed_tokens.weight is reloaded.model.shared.weight
        assert (reloaded.lm_head.weight is reloaded.model.shared.weight) is tie
        with torch.no_grad():
            assert torch.equal(reloaded(input_ids=source, decoder_input_ids=target).logits, expected)
    generation_config = json.loads((tmp_path / "generation_config.json").read_text())
    assert generation_config["decoder_start_token_id"] == 1


def test_auto_classes_resolve_to_the_family(tmp_path):
    config = tiny_config()
    config.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is Seq2SeqTransformerConfig
    assert isinstance(AutoConfig.for_model("hf_textgen_seq2seq"), Seq2SeqTransformerConfig)
    assert type(AutoModel.from_config(config)) is Seq2SeqTransformerModel
    assert type(AutoModelForSeq2SeqLM.from_config(config)) is Seq2SeqTransformerForConditionalGeneration


_REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys


    class _HideHfTextgen(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "hf_textgen" or name.startswith("hf_textgen."):
                raise ModuleNotFoundError(f"{name} is hidden for this test", name=name)
            return None


    sys.meta_path.insert(0, _HideHfTextgen())
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForSeq2SeqLM

    tensors = load_file(sys.argv[2])
    model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    with torch.no_grad():
        logits = model(input_ids=tensors["input_ids"], decoder_input_ids=tensors["decoder_input_ids"]).logits
    generated = model.generate(tensors["input_ids"], max_new_tokens=6, do_sample=False, eos_token_id=None)
    print(json.dumps({
        "module": type(model).__module__,
        "max_abs_diff": (logits - tensors["logits"]).abs().max().item(),
        "generated_equal": bool(torch.equal(generated, tensors["generated"])),
        "hf_textgen_loaded": any(name.split(".")[0] == "hf_textgen" for name in sys.modules),
    }))
    """
)


def test_remote_code_load_in_a_process_without_hf_textgen(tmp_path):
    model = make_generation_model()
    source, target = random_ids(2, 7), random_ids(2, 4, seed=1)
    with torch.no_grad():
        logits = model(input_ids=source, decoder_input_ids=target).logits
    generated = model.generate(source, max_new_tokens=6, do_sample=False, eos_token_id=None)
    model.save_pretrained(tmp_path / "model")
    auto_map = json.loads((tmp_path / "model" / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForSeq2SeqLM"].endswith("Seq2SeqTransformerForConditionalGeneration")
    assert (tmp_path / "model" / "modeling_seq2seq.py").is_file()
    tensors = {"input_ids": source, "decoder_input_ids": target, "logits": logits.contiguous(), "generated": generated}
    save_file(tensors, str(tmp_path / "expected.safetensors"))
    script = tmp_path / "load_remote.py"
    script.write_text(_REMOTE_CODE_SCRIPT)
    result = subprocess.run(
        [sys.executable, "-I", str(script), str(tmp_path / "model"), str(tmp_path / "expected.safetensors")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules"), report
    assert not report["hf_textgen_loaded"], report
    assert report["max_abs_diff"] == 0.0 and report["generated_equal"], report
