"""The encoder-decoder Transformer: the common encoder-decoder suite, then what only this family has (config,
the shared embedding, attention kernels, length limits, init) and the trusted reference, `torch.nn.Transformer`."""

import math

import pytest
import torch

import hf_textgen  # noqa: F401  (registers the Auto classes)
from hf_textgen.models.seq2seq import (
    Seq2SeqTransformerConfig,
    Seq2SeqTransformerForConditionalGeneration,
    Seq2SeqTransformerModel,
)

from .common import Seq2SeqLMModelTestMixin

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VOCAB_SIZE = 99


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


class TestSeq2SeqTransformer(Seq2SeqLMModelTestMixin):
    config_class = Seq2SeqTransformerConfig
    base_model_class = Seq2SeqTransformerModel
    seq2seq_lm_class = Seq2SeqTransformerForConditionalGeneration

    def get_config(self, **overrides):
        return tiny_config(**overrides)


def make_model(seed: int = 0, **overrides) -> Seq2SeqTransformerForConditionalGeneration:
    torch.manual_seed(seed)
    return Seq2SeqTransformerForConditionalGeneration(tiny_config(**overrides)).eval()


def random_ids(batch_size: int, length: int, seed: int = 0) -> torch.LongTensor:
    return TestSeq2SeqTransformer().random_ids(batch_size, length, seed)


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


# ---------------------------------------------------------------------------------- family-specific behaviour
@pytest.mark.parametrize("tie", [True, False])
def test_source_and_target_share_one_embedding_output_layer_tied_on_request(tie):
    model = make_model(tie_word_embeddings=tie)
    shared = model.model.shared.weight
    assert model.model.encoder.embed_tokens.weight is shared
    assert model.model.decoder.embed_tokens.weight is shared
    assert (model.lm_head.weight is shared) is tie


def test_eager_and_sdpa_attention_agree_on_a_padded_batch():
    model = TestSeq2SeqTransformer().make_generation_model()
    source = random_ids(2, 7)
    attention_mask = torch.ones_like(source)
    attention_mask[1, 4:] = 0
    target = random_ids(2, 5, seed=1)
    with torch.no_grad():
        sdpa = model(input_ids=source, attention_mask=attention_mask, decoder_input_ids=target).logits
        model.set_attn_implementation("eager")
        eager = model(input_ids=source, attention_mask=attention_mask, decoder_input_ids=target).logits
    torch.testing.assert_close(sdpa, eager, atol=1e-4, rtol=1e-4)


def test_source_or_target_longer_than_the_model_takes_is_a_clear_error():
    model = make_model(max_position_embeddings=8)
    with pytest.raises(ValueError, match="source is 9 tokens long.*max_position_embeddings=8"):
        model(input_ids=random_ids(1, 9), decoder_input_ids=random_ids(1, 2))
    with pytest.raises(ValueError, match="target is 9 tokens long"):
        model(input_ids=random_ids(1, 3), decoder_input_ids=random_ids(1, 9))


def test_untrained_tied_model_starts_near_uniform_loss():
    # A tied output layer reads the embedding of the token just fed in; without the small initial gain of the
    # decoder's last norm the untrained model would predict "repeat the input token" with a loss far above log(V).
    model = make_model(hidden_size=128, num_attention_heads=4)
    assert model.model.decoder.layer_norm.weight[0].item() == pytest.approx(128**-0.5)
    with torch.no_grad():
        loss = model(input_ids=random_ids(4, 6), labels=random_ids(4, 6, seed=1)).loss.item()
    assert abs(loss - math.log(VOCAB_SIZE)) < 0.5, loss


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


# ----------------------------------------------------------------------------- trusted reference: nn.Transformer
def _reference_positions(length: int, dim: int) -> torch.Tensor:
    """Vaswani et al.'s sinusoids written out independently: sin(pos / 10000^(2i/dim)) in channel i, the matching
    cosine in channel dim/2 + i (our channel order: all sines, then all cosines)."""
    position = torch.arange(length, dtype=torch.float32)[:, None]  # (T, 1)
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, dim, 2, dtype=torch.float32) / dim)  # (dim/2,)
    return torch.cat([torch.sin(position * frequency), torch.cos(position * frequency)], dim=-1)  # (T, dim)


def _copy_attention(ours, theirs: torch.nn.MultiheadAttention) -> None:
    projections = (ours.q_proj, ours.k_proj, ours.v_proj)
    theirs.in_proj_weight.copy_(torch.cat([projection.weight for projection in projections]))
    theirs.in_proj_bias.copy_(torch.cat([projection.bias for projection in projections]))
    theirs.out_proj.load_state_dict(ours.o_proj.state_dict())


def _reference_transformer(model: Seq2SeqTransformerForConditionalGeneration) -> torch.nn.Transformer:
    """A `torch.nn.Transformer(norm_first=True)` of the same shape holding `model`'s weights."""
    config = model.config
    reference = torch.nn.Transformer(
        d_model=config.hidden_size,
        nhead=config.num_attention_heads,
        num_encoder_layers=config.encoder_layers,
        num_decoder_layers=config.decoder_layers,
        dim_feedforward=config.intermediate_size,
        dropout=0.0,
        activation="relu",
        layer_norm_eps=config.layer_norm_eps,
        batch_first=True,
        norm_first=True,
    ).eval()
    encoder, decoder = model.model.encoder, model.model.decoder
    with torch.no_grad():
        for ours, theirs in zip(encoder.layers, reference.encoder.layers):
            theirs.norm1.load_state_dict(ours.self_attn_layer_norm.state_dict())
            _copy_attention(ours.self_attn, theirs.self_attn)
            theirs.norm2.load_state_dict(ours.final_layer_norm.state_dict())
            theirs.linear1.load_state_dict(ours.feed_forward.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.feed_forward.fc2.state_dict())
        reference.encoder.norm.load_state_dict(encoder.layer_norm.state_dict())
        for ours, theirs in zip(decoder.layers, reference.decoder.layers):
            theirs.norm1.load_state_dict(ours.self_attn_layer_norm.state_dict())
            _copy_attention(ours.self_attn, theirs.self_attn)
            theirs.norm2.load_state_dict(ours.cross_attn_layer_norm.state_dict())
            _copy_attention(ours.cross_attn, theirs.multihead_attn)
            theirs.norm3.load_state_dict(ours.final_layer_norm.state_dict())
            theirs.linear1.load_state_dict(ours.feed_forward.fc1.state_dict())
            theirs.linear2.load_state_dict(ours.feed_forward.fc2.state_dict())
        reference.decoder.norm.load_state_dict(decoder.layer_norm.state_dict())
    return reference


@pytest.mark.filterwarnings("ignore:enable_nested_tensor is True")  # nn.Transformer on norm_first
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_logits_equal_torch_nn_transformer_with_copied_weights(attn_implementation):
    """Unpadded inputs: our encoder-decoder computes what `torch.nn.Transformer(norm_first=True)` computes.

    The maths compared is the same on both sides: pre-norm LayerNorm blocks (no RMSNorm), ReLU feed-forward, biased
    q/k/v/out projections, a final LayerNorm on each stack. What `nn.Transformer` lacks is built here the way the
    model does it: the shared embedding times sqrt(hidden_size) plus sinusoidal positions, the causal target mask,
    and the output layer tied to the embedding. Padded sources are out of scope: our encoder counts positions over
    real tokens only, which `nn.Transformer` (no positions at all) cannot express.
    """
    model = make_model(tie_word_embeddings=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():  # every weight re-drawn, norms and biases included, so nothing sits at a trivial init
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if parameter.dim() == 2:
                parameter.copy_(noise / parameter.shape[1] ** 0.5)
            else:
                parameter.copy_((1.0 if "norm" in name else 0.0) + 0.2 * noise)
    model.set_attn_implementation(attn_implementation)
    reference = _reference_transformer(model)
    config = model.config
    source, target = random_ids(3, 9), random_ids(3, 7, seed=1)

    embedding = model.model.shared.weight
    scale = math.sqrt(config.hidden_size)  # scale_embedding=True, the default
    with torch.no_grad():
        ours = model(input_ids=source, decoder_input_ids=target, use_cache=False)
        source_embeds = embedding[source] * scale + _reference_positions(9, config.hidden_size)  # (B, S, C)
        target_embeds = embedding[target] * scale + _reference_positions(7, config.hidden_size)  # (B, T, C)
        memory = reference.encoder(source_embeds)
        causal = torch.nn.Transformer.generate_square_subsequent_mask(7)
        decoded = reference.decoder(target_embeds, memory, tgt_mask=causal, tgt_is_causal=True)
        logits = decoded @ embedding.T  # (B, T, V)

    assert ours.logits.dtype == logits.dtype == torch.float32
    assert logits.abs().max() > 1.0  # not a near-zero comparison
    torch.testing.assert_close(ours.encoder_last_hidden_state, memory, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ours.logits, logits, atol=1e-5, rtol=1e-5)
