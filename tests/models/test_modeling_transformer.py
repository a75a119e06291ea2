"""Transformer family: the common causal-LM suite, plus the Llama equivalence and what only attention has."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

from hf_textgen import (
    TransformerConfig,
    TransformerForCausalLM,
    TransformerForSequenceClassification,
    TransformerModel,
)
from hf_textgen.models.transformer import convert_llama_state_dict, convert_to_llama_state_dict

from .common import CausalLMModelTestMixin

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_transformer_config(**overrides) -> TransformerConfig:
    fields = {
        "vocab_size": 99,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "pad_token_id": 0,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    return TransformerConfig(**{**fields, **overrides})


class TestTransformer(CausalLMModelTestMixin):
    """The common suite on a grouped-query config (4 query heads sharing 2 key/value heads), SDPA attention."""

    config_class = TransformerConfig
    base_model_class = TransformerModel
    causal_lm_class = TransformerForCausalLM
    sequence_classification_class = TransformerForSequenceClassification

    def get_config(self, **overrides):
        return tiny_transformer_config(**overrides)


def make_model(seed: int = 0, attn_implementation: str | None = None, **overrides) -> TransformerForCausalLM:
    torch.manual_seed(seed)
    config = tiny_transformer_config(**overrides)
    if attn_implementation is not None:
        config._attn_implementation = attn_implementation
    return TransformerForCausalLM(config).eval()


def random_ids(batch_size: int, length: int, seed: int = 0, vocab_size: int = 99) -> torch.LongTensor:
    return torch.randint(3, vocab_size, (batch_size, length), generator=torch.Generator().manual_seed(seed))


def left_padded(lengths: list[int], seed: int = 0) -> tuple[torch.LongTensor, torch.LongTensor]:
    """A left-padded batch (pad id 0) of random rows with the given lengths, and its attention mask."""
    longest = max(lengths)
    input_ids = random_ids(len(lengths), longest, seed)
    attention_mask = torch.ones_like(input_ids)
    for index, length in enumerate(lengths):
        input_ids[index, : longest - length] = 0
        attention_mask[index, : longest - length] = 0
    return input_ids, attention_mask


def count_parameters(model: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


# ------------------------------------------------------------------------------------------- Llama equivalence
@pytest.mark.parametrize(
    ("num_key_value_heads", "tie_word_embeddings"), [(4, False), (2, True), (1, False)], ids=["mha", "gqa", "mqa"]
)
def test_same_function_as_llama(num_key_value_heads, tie_word_embeddings):
    # An independently initialised Llama, converted into our fused layout: same logits, same parameter count.
    llama_config = tiny_transformer_config(
        num_key_value_heads=num_key_value_heads, tie_word_embeddings=tie_word_embeddings, rope_theta=500.0
    ).to_llama_config()
    torch.manual_seed(0)
    llama = LlamaForCausalLM(llama_config).eval()
    model = TransformerForCausalLM.from_llama(llama)
    assert count_parameters(model) == count_parameters(llama)
    assert model.config.rope_theta == 500.0

    input_ids = random_ids(3, 12)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids).logits, llama(input_ids).logits, atol=1e-5, rtol=1e-5)

    # A left-padded batch: Llama needs the positions spelled out, ours derives them from the mask.
    input_ids, attention_mask = left_padded([12, 5, 9])
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(input_ids, attention_mask=attention_mask).logits
        reference = llama(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    real = attention_mask.bool()
    torch.testing.assert_close(ours[real], reference[real], atol=1e-5, rtol=1e-5)

    # And back: our weights split into a Llama model give the same logits again.
    with torch.no_grad():
        torch.testing.assert_close(model.to_llama()(input_ids).logits, llama(input_ids).logits, atol=0, rtol=0)


def test_same_function_as_llama_with_llama3_rope_scaling():
    rope_parameters = {
        "rope_type": "llama3",
        "rope_theta": 10000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    model = make_model(rope_parameters=rope_parameters)
    llama = model.to_llama()
    input_ids = random_ids(2, 40)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids).logits, llama(input_ids).logits, atol=1e-5, rtol=1e-5)


def test_greedy_generation_identical_to_llama():
    model = make_model()
    llama = model.to_llama()
    input_ids, attention_mask = left_padded([6, 3])
    kwargs = {"attention_mask": attention_mask, "max_new_tokens": 10, "do_sample": False, "pad_token_id": 0}
    assert torch.equal(model.generate(input_ids, **kwargs), llama.generate(input_ids, **kwargs))


@pytest.mark.parametrize("tie_word_embeddings", [False, True])
def test_training_loss_and_gradients_match_llama(tie_word_embeddings):
    # In training mode the loss is computed without logits; it must still be Llama's loss, with Llama's gradients.
    model = make_model(tie_word_embeddings=tie_word_embeddings).train()
    llama = model.to_llama().train()
    input_ids = random_ids(3, 16)
    labels = input_ids.clone()
    labels[0, :5] = -100
    outputs = model(input_ids, labels=labels)
    reference = llama(input_ids, labels=labels)
    assert outputs.logits is None
    torch.testing.assert_close(outputs.loss, reference.loss, atol=1e-6, rtol=1e-6)
    outputs.loss.backward()
    reference.loss.backward()
    llama_grads = convert_llama_state_dict({name: p.grad for name, p in llama.named_parameters()}, model.config)
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(parameter.grad, llama_grads[name], atol=1e-6, rtol=1e-4, msg=name)

    # The Trainer's `num_items_in_batch` divides the summed loss, as in transformers' `ForCausalLMLoss`.
    num_items = torch.tensor(37)
    with torch.no_grad():
        ours = model(input_ids, labels=labels, num_items_in_batch=num_items).loss
        theirs = llama(input_ids, labels=labels, num_items_in_batch=num_items).loss
    torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=1e-6)


def test_training_loss_with_logits_when_fused_loss_is_off():
    model = make_model(fused_loss_in_training=False).train()
    input_ids = random_ids(2, 8)
    outputs = model(input_ids, labels=input_ids)
    assert outputs.logits.shape == (2, 8, 99)
    model.config.fused_loss_in_training = True
    torch.testing.assert_close(model(input_ids, labels=input_ids).loss, outputs.loss, atol=1e-6, rtol=1e-6)


def test_bf16_autocast_training_step_close_to_fp32():
    model = make_model().train()
    input_ids = random_ids(2, 16)
    fp32_loss = model(input_ids, labels=input_ids).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_loss = model(input_ids, labels=input_ids).loss
    assert bf16_loss.dtype == torch.float32
    torch.testing.assert_close(bf16_loss, fp32_loss, atol=2e-2, rtol=0)
    bf16_loss.backward()
    assert all(torch.isfinite(parameter.grad).all() for parameter in model.parameters())


def test_state_dict_conversion_round_trip():
    model = make_model(tie_word_embeddings=False)
    state_dict = model.state_dict()
    llama_state_dict = convert_to_llama_state_dict(state_dict, model.config)
    assert "model.layers.0.self_attn.q_proj.weight" in llama_state_dict
    assert "model.layers.0.mlp.up_proj.weight" in llama_state_dict
    back = convert_llama_state_dict(llama_state_dict, model.config)
    assert back.keys() == state_dict.keys()
    assert all(torch.equal(back[name], state_dict[name]) for name in state_dict)


def test_sequence_classification_matches_llama():
    torch.manual_seed(0)
    config = tiny_transformer_config(num_labels=3)
    llama = LlamaForSequenceClassification(config.to_llama_config(num_labels=3)).eval()
    model = TransformerForSequenceClassification(config).eval()
    model.load_state_dict(convert_llama_state_dict(llama.state_dict(), config), strict=False)
    input_ids, attention_mask = left_padded([7, 4])
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        ours = model(input_ids, attention_mask=attention_mask).logits
        theirs = llama(input_ids, attention_mask=attention_mask, position_ids=position_ids).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------- attention, cache, ckpt
def test_eager_and_sdpa_give_the_same_logits():
    sdpa, eager = make_model(), make_model(attn_implementation="eager")
    assert sdpa.config._attn_implementation == "sdpa"
    for input_ids, attention_mask in [(random_ids(2, 9), None), left_padded([9, 4, 6])]:
        with torch.no_grad():
            expected = sdpa(input_ids, attention_mask=attention_mask).logits
            actual = eager(input_ids, attention_mask=attention_mask).logits
        # Padding positions attend to nothing; the backends fill those rows differently, and nobody reads them.
        real = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        torch.testing.assert_close(actual[real], expected[real], atol=1e-5, rtol=1e-4)
    with torch.no_grad():
        attentions = eager(random_ids(2, 9), output_attentions=True).attentions
    assert len(attentions) == 2 and attentions[0].shape == (2, 4, 9, 9)
    # Causal: no weight on future positions, and each row sums to one.
    assert attentions[0].triu(diagonal=1).abs().max() == 0
    torch.testing.assert_close(attentions[0].sum(-1), torch.ones(2, 4, 9))


def test_eager_and_sdpa_generate_the_same_tokens():
    input_ids, attention_mask = left_padded([7, 3])
    kwargs = {"attention_mask": attention_mask, "max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
    sdpa = make_model().generate(input_ids, **kwargs)
    assert torch.equal(make_model(attn_implementation="eager").generate(input_ids, **kwargs), sdpa)
    assert torch.equal(make_model().generate(input_ids[:1], max_new_tokens=8, do_sample=False)[0], sdpa[0])


def test_hidden_dropout_acts_only_in_training():
    model = make_model(hidden_dropout=0.5)
    input_ids = random_ids(2, 8)
    with torch.no_grad():
        assert torch.equal(model(input_ids).logits, model(input_ids).logits)
        model.train()
        torch.manual_seed(0)
        first = model.model(input_ids).last_hidden_state
        torch.manual_seed(1)
        assert not torch.equal(first, model.model(input_ids).last_hidden_state)


@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_static_cache_generation_equals_dynamic(attn_implementation):
    model = make_model(attn_implementation=attn_implementation)
    input_ids, attention_mask = left_padded([7, 3, 5])
    kwargs = {"attention_mask": attention_mask, "max_new_tokens": 9, "do_sample": False, "pad_token_id": 0}
    dynamic = model.generate(input_ids, **kwargs)
    static = model.generate(input_ids, cache_implementation="static", **kwargs)
    assert torch.equal(static, dynamic)


def test_left_padded_batch_with_eager_attention_equals_rows_alone():
    model = make_model(attn_implementation="eager")
    input_ids, attention_mask = left_padded([8, 3])
    with torch.no_grad():
        batched = model(input_ids, attention_mask=attention_mask).logits
        for index, length in enumerate([8, 3]):
            alone = model(input_ids[index : index + 1, 8 - length :]).logits
            torch.testing.assert_close(batched[index : index + 1, 8 - length :], alone, atol=1e-5, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients():
    input_ids = random_ids(2, 12)
    gradients = []
    for checkpointing in (False, True):
        model = make_model(hidden_dropout=0.0).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.layers[0].gradient_checkpointing
        model(input_ids, labels=input_ids).loss.backward()
        gradients.append({name: parameter.grad for name, parameter in model.named_parameters()})
    for name, gradient in gradients[0].items():
        torch.testing.assert_close(gradients[1][name], gradient, atol=1e-7, rtol=1e-5, msg=name)


def test_packed_sequences_attend_only_within_their_own_sequence():
    # Position ids that restart mark packed sequences (no attention mask, no cache, as in training): each must
    # match the sequence alone.
    model = make_model()
    first, second = random_ids(1, 5, seed=1), random_ids(1, 4, seed=2)
    packed = torch.cat([first, second], dim=1)
    position_ids = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3]])
    with torch.no_grad():
        logits = model(packed, position_ids=position_ids, use_cache=False).logits
        torch.testing.assert_close(logits[:, 5:], model(second).logits, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(logits[:, :5], model(first).logits, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------------------------------- config
def test_default_config_is_a_small_real_model():
    config = TransformerConfig()
    assert config.model_type == "hf_textgen_transformer"
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (512, 8, 8)
    assert config.head_dim == 64 and config.num_key_value_heads == 8
    assert config.rope_parameters == {"rope_type": "default", "rope_theta": 10000.0}


def test_config_round_trips_through_llama_config():
    config = tiny_transformer_config(rope_theta=1234.0, tie_word_embeddings=False)
    llama_config = config.to_llama_config()
    assert isinstance(llama_config, LlamaConfig)
    assert llama_config.rope_parameters["rope_theta"] == 1234.0
    assert TransformerConfig.from_llama_config(llama_config).to_dict() == config.to_dict()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"hidden_size": 30}, "hidden_size"),
        ({"num_key_value_heads": 3}, "num_key_value_heads"),
        ({"num_hidden_layers": 0}, "num_hidden_layers"),
        ({"vocab_size": -5}, "vocab_size"),
        ({"head_dim": 7}, "head_dim"),
        ({"attention_dropout": 1.0}, "attention_dropout"),
        ({"hidden_dropout": -0.1}, "hidden_dropout"),
        ({"rms_norm_eps": 0.0}, "rms_norm_eps"),
        ({"rope_theta": -1.0}, "rope_theta"),
        ({"rope_parameters": {"rope_type": "dynamic", "rope_theta": 1e4, "factor": 2.0}}, "rope_type"),
        ({"hidden_act": "swish2"}, "hidden_act"),
        ({"pad_token_id": 99}, "pad_token_id"),
        ({"eos_token_id": [2, 500]}, "eos_token_id"),
    ],
)
def test_config_errors_name_the_bad_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_transformer_config(**overrides)


def test_llama_config_with_biases_is_refused():
    llama_config = tiny_transformer_config().to_llama_config(attention_bias=True)
    with pytest.raises(ValueError, match="attention_bias"):
        TransformerConfig.from_llama_config(llama_config)
