"""RNN family: the common causal-LM suite for every cell type, plus what only a recurrent model has."""

import json

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from torch import nn
from transformers import AutoModelForCausalLM

from hf_textgen import RNNConfig, RNNForCausalLM, RNNForSequenceClassification, RNNModel

from .common import CausalLMModelTestMixin, check_remote_code_loading

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CELL_TYPES = ("lstm", "gru", "rnn")


def tiny_rnn_config(**overrides) -> RNNConfig:
    fields = {
        "vocab_size": 99,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "cell_type": "lstm",
        "dropout": 0.1,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    return RNNConfig(**{**fields, **overrides})


class _RNNSuite(CausalLMModelTestMixin):
    config_class = RNNConfig
    base_model_class = RNNModel
    causal_lm_class = RNNForCausalLM
    sequence_classification_class = RNNForSequenceClassification
    cell_type = "lstm"
    # All three cell types are loaded in one fresh process by `test_remote_code_load_every_cell_type` below.
    run_remote_code_test = False

    def get_config(self, **overrides):
        return tiny_rnn_config(**{"cell_type": self.cell_type, **overrides})

    def get_default_config(self, **overrides):
        return RNNConfig(cell_type=self.cell_type, **overrides)


class TestLSTM(_RNNSuite):
    cell_type = "lstm"


class TestGRU(_RNNSuite):
    cell_type = "gru"


class TestElmanRNN(_RNNSuite):
    cell_type = "rnn"


def test_remote_code_load_every_cell_type(tmp_path):
    models_and_inputs = []
    for cell_type in CELL_TYPES:
        torch.manual_seed(0)
        model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type)).eval()
        models_and_inputs.append((model, torch.randint(3, 99, (2, 7))))
    check_remote_code_loading(models_and_inputs, tmp_path)


# ------------------------------------------------------------------------------------------------------ config
def test_default_config_is_a_small_real_model():
    config = RNNConfig()
    assert config.model_type == "hf_textgen_rnn"
    assert (config.cell_type, config.hidden_size, config.num_hidden_layers) == ("lstm", 512, 2)
    assert config.embedding_size is None and config.input_embedding_size == config.hidden_size
    assert config.tie_word_embeddings and not config.bidirectional


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"cell_type": "transformer"}, "cell_type"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"vocab_size": -5}, "vocab_size"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"pad_token_id": 99}, "pad_token_id"),
        ({"embedding_size": 16, "tie_word_embeddings": True}, "tie_word_embeddings"),
    ],
)
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_rnn_config(**overrides)


@pytest.mark.parametrize(
    ("overrides", "field"), [({"hidden_size": 1.5}, "hidden_size"), ({"bidirectional": "yes"}, "bidirectional")]
)
def test_config_field_of_the_wrong_type_is_refused_by_the_strict_dataclass(overrides, field):
    # As for every transformers config: `@strict` checks the annotated type of each field as it is set.
    with pytest.raises(StrictDataclassFieldValidationError, match=field):
        tiny_rnn_config(**overrides)


def test_bidirectional_causal_lm_is_refused():
    config = tiny_rnn_config(bidirectional=True)  # fine for classification, so the config itself accepts it
    with pytest.raises(ValueError, match="bidirectional"):
        RNNForCausalLM(config)


def test_embedding_size_follows_an_edited_hidden_size():
    config = tiny_rnn_config()
    config.hidden_size = 48  # what `config_overrides`-style edits do
    model = RNNForCausalLM(config)
    assert model.model.embed_tokens.weight.shape == (99, 48)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()


def test_config_edited_after_construction_is_checked_when_building_a_model():
    config = tiny_rnn_config()
    config.cell_type = "transformer"
    with pytest.raises(ValueError, match="cell_type"):
        RNNForCausalLM(config)


def test_config_edited_after_construction_is_checked_on_save(tmp_path):
    config = tiny_rnn_config()
    config.cell_type = "lstmm"
    with pytest.raises(StrictDataclassClassValidationError, match="cell_type"):  # as LlamaConfig's would
        config.save_pretrained(tmp_path)


def test_untied_embedding_size_differs_from_hidden_size(tmp_path):
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(embedding_size=16, tie_word_embeddings=False)).eval()
    assert model.model.embed_tokens.weight.shape == (99, 16)
    assert model.lm_head.weight.shape == (99, 32)
    input_ids = torch.randint(3, 99, (2, 6))
    model.save_pretrained(tmp_path)
    reloaded = RNNForCausalLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=input_ids).logits, model(input_ids=input_ids).logits)


def test_tied_weights_share_storage_and_survive_reload(tmp_path):
    model = RNNForCausalLM(tiny_rnn_config())
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.save_pretrained(tmp_path)
    reloaded = RNNForCausalLM.from_pretrained(tmp_path)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.model.embed_tokens.weight.data_ptr()


# ------------------------------------------------------------------------------- against torch's own multi-layer RNN
@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_backbone_equals_torch_multilayer_rnn(cell_type):
    """Our stacked layers are the same computation as one `nn.LSTM/GRU/RNN(num_layers=...)` (the trusted kernel)."""
    torch.manual_seed(0)
    model = RNNModel(tiny_rnn_config(cell_type=cell_type, num_hidden_layers=3, dropout=0.0)).eval()
    reference = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell_type](32, 32, num_layers=3, batch_first=True)
    with torch.no_grad():
        for index, layer in enumerate(model.layers):
            for name, parameter in layer.named_parameters():
                getattr(reference, name.replace("_l0", f"_l{index}")).copy_(parameter)
        input_ids = torch.randint(3, 99, (2, 9))
        expected, _ = reference(model.embed_tokens(input_ids))
        expected = torch.nn.functional.rms_norm(expected, (32,), model.norm.weight, eps=1e-6)  # the final norm
        torch.testing.assert_close(model(input_ids=input_ids).last_hidden_state, expected)


# ----------------------------------------------------------------------------------- initialisation and old models
@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_checkpoint_from_before_the_init_change_loads_to_its_old_outputs(tmp_path, cell_type):
    """A config.json written before `scale_embedding`/`final_norm` existed has neither key; such weights were
    trained as plain embedding -> stacked cells -> tied head, and must load to exactly that computation."""
    torch.manual_seed(0)
    old = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type, scale_embedding=False, final_norm=False)).eval()
    old.save_pretrained(tmp_path)
    config_file = tmp_path / "config.json"
    fields = json.loads(config_file.read_text())
    for name in ("scale_embedding", "final_norm"):
        del fields[name]
    config_file.write_text(json.dumps(fields))

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert (loaded.config.scale_embedding, loaded.config.final_norm) == (False, False)
    assert not any("norm" in name for name, _ in loaded.named_parameters())
    input_ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        hidden_states = torch.nn.functional.embedding(input_ids, old.model.embed_tokens.weight)  # unscaled
        for layer in old.model.layers:
            hidden_states, _ = layer(hidden_states)
        expected = hidden_states @ old.model.embed_tokens.weight.T  # (B, T, V), the tied head without a scale
        torch.testing.assert_close(loaded(input_ids=input_ids).logits, expected, rtol=0, atol=1e-5)


def test_new_configs_scale_the_embeddings_and_normalise_the_output():
    config = RNNConfig()
    assert config.scale_embedding and config.final_norm
    model = RNNForCausalLM(tiny_rnn_config(dropout=0.0)).eval()
    input_ids = torch.randint(3, 99, (2, 9))
    with torch.no_grad():
        raw = torch.nn.functional.embedding(input_ids, model.model.embed_tokens.weight)
        torch.testing.assert_close(model.get_input_embeddings()(input_ids), raw * 32**0.5)
        # Unit-scale inputs for the cells, rows of norm ~1 for the tied head.
        assert 0.8 < model.model.embed_tokens.weight.norm(dim=1).mean() < 1.2
        hidden_states = model.model(input_ids=input_ids).last_hidden_state
        raw_states = model.get_input_embeddings()(input_ids)
        for layer in model.model.layers:
            raw_states, _ = layer(raw_states)
    # The head reads states of rms 0.3 (the norm's gain at init), up to the norm's eps (1e-6), which the last LSTM
    # layer's small outputs (rms ~0.01 at init, 0.002 at the first position) feel.
    raw_ms = raw_states.pow(2).mean(-1)  # (B, T)
    expected = 0.3 * (raw_ms / (raw_ms + 1e-6)).sqrt()
    torch.testing.assert_close(hidden_states.pow(2).mean(-1).sqrt(), expected, rtol=1e-4, atol=1e-6)
    assert expected.mean() > 0.29


@pytest.mark.parametrize("cell_type", CELL_TYPES)
@pytest.mark.parametrize("final_norm", [True, False])
def test_the_lstm_layer_under_the_final_norm_starts_at_a_fifth_of_torchs_bound(cell_type, final_norm):
    """With the final norm the last LSTM layer starts 5x smaller (behind the scale-invariant norm it then learns
    faster relative to its size); every other layer, every GRU/Elman layer, and every layer without the norm keeps
    torch's U(-1/sqrt(H), 1/sqrt(H))."""
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type, num_hidden_layers=3, final_norm=final_norm))
    bound = 32**-0.5
    for index, layer in enumerate(model.model.layers):
        scale = 1 / 5 if final_norm and cell_type == "lstm" and index == 2 else 1.0
        for name, parameter in layer.named_parameters():
            values = parameter.detach().clone()
            if cell_type == "lstm" and name.startswith("bias_ih"):
                assert torch.equal(values[32:64], torch.ones(32))  # forget-gate bias 1 in every layer
                values = torch.cat([values[:32], values[64:]])
            # The largest of >= 96 uniform draws is within a few percent of the bound it was drawn under.
            assert 0.9 * scale * bound < values.abs().max() <= scale * bound, (index, name)


# ------------------------------------------------------------------------------------------------ state and cache
@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_cache_holds_one_fixed_size_state_per_layer(cell_type):
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type, num_hidden_layers=3)).eval()
    shapes = []
    for length in (4, 64):
        with torch.no_grad():
            cache = model(input_ids=torch.randint(3, 99, (2, length)), use_cache=True).cache
        assert len(cache.layers) == 3
        expected_states = 2 if cell_type == "lstm" else 1  # LSTM keeps (h, c)
        shapes.append(
            [tuple(layer.recurrent_states[index].shape) for layer in cache.layers for index in range(expected_states)]
        )
    assert shapes[0] == shapes[1] == [(2, 32)] * (3 * expected_states)  # context length does not grow the state


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_token_by_token_decoding_equals_the_sequence_kernel(cell_type):
    """Decode steps use torch's single-step cell kernel; it must agree with the fused sequence kernel."""
    torch.manual_seed(0)
    model = RNNModel(tiny_rnn_config(cell_type=cell_type, num_hidden_layers=3)).eval()
    input_ids = torch.randint(3, 99, (2, 7))
    with torch.no_grad():
        full = model(input_ids=input_ids, use_cache=True)
        cache, steps = None, []
        for position in range(7):
            step = model(input_ids=input_ids[:, position : position + 1], cache=cache, use_cache=True)
            cache = step.cache
            steps.append(step.last_hidden_state)
    torch.testing.assert_close(torch.cat(steps, dim=1), full.last_hidden_state, atol=1e-6, rtol=1e-5)
    for stepped, whole in zip(cache.layers, full.cache.layers):
        for index, state in stepped.recurrent_states.items():
            torch.testing.assert_close(state, whole.recurrent_states[index], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_beam_reorder_moves_states_with_their_rows(cell_type):
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type)).eval()
    prompt = torch.randint(3, 99, (3, 5))
    next_tokens = torch.randint(3, 99, (3, 1))
    beam_idx = torch.tensor([2, 0, 0])
    with torch.no_grad():
        cache = model(input_ids=prompt, use_cache=True).cache
        cache.reorder_cache(beam_idx)
        reordered = model(input_ids=next_tokens, cache=cache, use_cache=True).logits
        expected = model(input_ids=torch.cat([prompt[beam_idx], next_tokens], dim=1), use_cache=False).logits
    torch.testing.assert_close(reordered[:, -1], expected[:, -1], atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_masked_positions_anywhere_never_move_the_state(cell_type):
    """Holes in the mask (not only left padding) are skipped; a fully masked row keeps its incoming state."""
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type)).eval()
    input_ids = torch.randint(3, 99, (3, 6))
    attention_mask = torch.tensor([[1, 0, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        prefix = model(input_ids=torch.randint(3, 99, (3, 4)), use_cache=True).cache
        before = [state.clone() for layer in prefix.layers for state in layer.recurrent_states.values()]
        outputs = model(input_ids=input_ids, attention_mask=attention_mask, cache=prefix, use_cache=True)
        after = [state for layer in outputs.cache.layers for state in layer.recurrent_states.values()]
        for old, new in zip(before, after):
            assert torch.equal(new[1], old[1])  # the all-padding row
            assert not torch.equal(new[0], old[0])


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_hand_written_decode_loop_with_a_growing_mask_matches_generate(cell_type):
    """The usual transformers loop passes a mask covering past + new tokens; only the new columns are used."""
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type)).eval()
    input_ids = torch.randint(3, 99, (2, 6))
    input_ids[0, :2] = 0
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :2] = 0
    expected = model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=5, eos_token_id=None)
    with torch.no_grad():
        outputs = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=True)
        sequences = input_ids
        for _ in range(5):
            next_token = outputs.logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
            sequences = torch.cat([sequences, next_token], dim=1)
            attention_mask = torch.cat([attention_mask, torch.ones_like(next_token)], dim=1)
            outputs = model(input_ids=next_token, attention_mask=attention_mask, cache=outputs.cache, use_cache=True)
    assert torch.equal(sequences, expected)


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_random_padded_batches_match_rows_alone(cell_type, bidirectional):
    """Random batch sizes, lengths (down to one token) and padding sides: every real position matches the row alone."""
    torch.manual_seed(0)
    model = RNNModel(tiny_rnn_config(cell_type=cell_type, bidirectional=bidirectional)).eval()
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        batch_size = int(torch.randint(1, 5, (1,), generator=generator))
        lengths = torch.randint(1, 10, (batch_size,), generator=generator).tolist()
        left = bool(torch.randint(0, 2, (1,), generator=generator))
        longest = max(lengths)
        input_ids = torch.zeros(batch_size, longest, dtype=torch.long)
        attention_mask = torch.zeros_like(input_ids)
        rows = []
        for index, length in enumerate(lengths):
            row = torch.randint(3, 99, (length,), generator=generator)
            span = slice(longest - length, longest) if left else slice(0, length)
            input_ids[index, span], attention_mask[index, span] = row, 1
            rows.append((row, span))
        with torch.no_grad():
            batched = model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            for index, (row, span) in enumerate(rows):
                alone = model(input_ids=row.unsqueeze(0)).last_hidden_state[0]
                torch.testing.assert_close(batched[index, span], alone, atol=1e-5, rtol=1e-4)
                assert not batched[index, attention_mask[index] == 0].any()  # padding outputs are zero


@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_row_with_holes_equals_row_without_them(cell_type):
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type)).eval()
    input_ids = torch.randint(3, 99, (1, 6))
    attention_mask = torch.tensor([[1, 0, 1, 1, 0, 1]])
    with torch.no_grad():
        holed = model(input_ids=input_ids, attention_mask=attention_mask).logits[0, attention_mask[0].bool()]
        compact = model(input_ids=input_ids[:, attention_mask[0].bool()]).logits[0]
    torch.testing.assert_close(holed, compact, atol=1e-5, rtol=1e-4)


def test_bidirectional_model_returns_no_cache_and_refuses_one():
    model = RNNModel(tiny_rnn_config(bidirectional=True)).eval()
    input_ids = torch.randint(3, 99, (2, 5))
    outputs = model(input_ids=input_ids, use_cache=True)
    assert outputs.cache is None
    assert outputs.last_hidden_state.shape == (2, 5, 64)
    causal = RNNForCausalLM(tiny_rnn_config())
    cache = causal(input_ids=input_ids, use_cache=True).cache
    with pytest.raises(ValueError, match="bidirectional"):
        model(input_ids=input_ids, cache=cache)


# --------------------------------------------------------------------------------------- bidirectional classifier
@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_bidirectional_classifier_pools_both_directions_ends(cell_type):
    torch.manual_seed(0)
    config = tiny_rnn_config(cell_type=cell_type, bidirectional=True, num_labels=4)
    model = RNNForSequenceClassification(config).eval()
    assert model.score.in_features == 64
    input_ids = torch.randint(3, 99, (2, 6))
    attention_mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        hidden = model.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # Row 0: forward half at its last real token (5), backward half at its first real token (2).
        pooled = torch.cat([hidden[0, 5, :32], hidden[0, 2, 32:]]).unsqueeze(0)  # (1, 2H)
        torch.testing.assert_close(logits[:1], model.score(pooled))
        alone = model(input_ids=input_ids[:1, 2:]).logits
    torch.testing.assert_close(logits[:1], alone, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_bidirectional_classifier_ignores_padding(padding_side):
    torch.manual_seed(0)
    model = RNNForSequenceClassification(tiny_rnn_config(bidirectional=True, num_labels=3)).eval()
    row = torch.randint(3, 99, (1, 4))
    pads = torch.zeros(1, 3, dtype=torch.long)
    padded = torch.cat([pads, row], dim=1) if padding_side == "left" else torch.cat([row, pads], dim=1)
    with torch.no_grad():
        # No attention mask given: the classifier derives it from `pad_token_id`.
        torch.testing.assert_close(model(input_ids=padded).logits, model(input_ids=row).logits, atol=1e-5, rtol=1e-4)


def test_bidirectional_classifier_trains_both_directions():
    torch.manual_seed(0)
    model = RNNForSequenceClassification(tiny_rnn_config(bidirectional=True, num_labels=2)).train()
    input_ids = torch.randint(3, 99, (4, 6))
    model(input_ids=input_ids, labels=torch.tensor([0, 1, 1, 0])).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


# --------------------------------------------------------------------------------------- activation checkpointing
@pytest.mark.parametrize("cell_type", CELL_TYPES)
def test_gradient_checkpointing_gives_the_same_gradients(cell_type):
    torch.manual_seed(0)
    model = RNNForCausalLM(tiny_rnn_config(cell_type=cell_type, num_hidden_layers=3)).train()
    assert model.supports_gradient_checkpointing
    input_ids = torch.randint(3, 99, (3, 9), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[0, :4] = 0  # a left-padded row: the packed path runs inside the checkpointed layers too

    def gradients() -> dict[str, torch.Tensor]:
        model.zero_grad()
        torch.manual_seed(1)  # the same dropout masks in both runs
        model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids).loss.backward()
        return {name: parameter.grad.clone() for name, parameter in model.named_parameters()}

    plain = gradients()
    model.gradient_checkpointing_enable()
    assert model.model.gradient_checkpointing
    calls = []  # count the checkpointed calls: one per layer
    checkpoint = model.model._gradient_checkpointing_func
    model.model._gradient_checkpointing_func = lambda *args, **kwargs: (calls.append(1), checkpoint(*args, **kwargs))[
        1
    ]
    checkpointed = gradients()
    assert len(calls) == 3
    for name, grad in plain.items():
        torch.testing.assert_close(checkpointed[name], grad, msg=name)
