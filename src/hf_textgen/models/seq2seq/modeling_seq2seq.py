"""The encoder-decoder Transformer (Vaswani et al., 2017) as a transformers sequence-to-sequence model.

Read top to bottom: sinusoidal positions, attention (self, causal and cross, through transformers' attention
interface so `eager` and `sdpa` both work), the encoder and decoder blocks, the two stacks, then the
`PreTrainedModel` ladder. Three deliberate departures from the 2017 paper, all for small models trained on CPUs:

- Pre-norm blocks (LayerNorm before each sub-layer, one more at the top of each stack) instead of post-norm: they
  train stably without a learning-rate warm-up tuned to the model size.
- Encoder positions count only real tokens (from the attention mask), so a source padded on either side is
  encoded exactly as the unpadded one.
- With the output layer tied to the embedding, the decoder's last LayerNorm starts with gain hidden_size**-0.5:
  otherwise the untrained model reads back the embedding of the token it was fed and predicts "repeat it" with
  logits ~sqrt(hidden_size). The gain is learned, so the model can sharpen its predictions as it trains (this
  took a 2,000-pair string reversal from exact match 0.00 to 0.97 in 300 steps). Untied, the gain starts just
  low enough to keep the logits' spread (initializer_range * sqrt(hidden_size) at gain 1) at most 0.3. Either
  way the loss at init is ~ln(vocab_size) at any width.

Positions are the paper's fixed sinusoids: no parameters to learn from little data, and computed on the fly for
the positions in use (so there is no buffer to save, load or move between devices).

This file imports only torch, transformers and its sibling configuration, so a saved model folder loads with
`trust_remote_code=True` where hf_textgen is not installed.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.generation import GenerationMixin
from transformers.loss.loss_utils import ForMaskedLMLoss
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.utils import can_return_tuple

from .configuration_seq2seq import Seq2SeqTransformerConfig

# transformers 5.24 renamed the cache from `past_key_values` to `cache` (output fields, `forward` and mask-function
# arguments). A saved model runs under whatever transformers its user has, so this file speaks the installed name.
_CACHE = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


def sinusoidal_positions(position_ids: torch.Tensor, dim: int) -> torch.Tensor:
    """The fixed sin/cos position encodings of Vaswani et al. for integer positions `(B, T)`, as `(B, T, dim)`.

    The sines fill the first half of the channels and the cosines the second (the paper interleaves them; the
    order of channels is irrelevant to a model that only sees them through linear maps).
    """
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, device=position_ids.device, dtype=torch.float32) / dim))
    angles = position_ids.to(torch.float32)[..., None] * inv_freq  # (B, T, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (B, T, dim)


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing: the decoder reads `decoder_start_token_id` then the target shifted one step right.

    Ignored label positions (-100) become `pad_token_id`; they sit after the real target, so the causal mask keeps
    them from influencing any scored position.
    """
    decoder_input_ids = labels.new_zeros(labels.shape)  # (B, T)
    decoder_input_ids[:, 1:] = labels[:, :-1].clone()
    decoder_input_ids[:, 0] = decoder_start_token_id
    return decoder_input_ids.masked_fill(decoder_input_ids == -100, pad_token_id)


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax(QK^T / sqrt(d)) V with an additive mask, the reference the `sdpa` kernel must agree with."""
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, Tq, Tk)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)  # (B, H, Tq, head_dim)
    return attn_output.transpose(1, 2).contiguous(), attn_weights  # (B, Tq, H, head_dim)


class Seq2SeqTransformerAttention(nn.Module):
    """Multi-head attention: encoder self-attention, decoder causal self-attention, or decoder cross-attention.

    With a cache, decoder self-attention appends the new keys/values to the self-attention cache; cross-attention
    projects the encoder states once, stores them in the cross-attention cache and reuses them at every later step.
    """

    def __init__(self, config: Seq2SeqTransformerConfig, layer_idx: int, is_causal: bool, is_cross_attention: bool):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.is_causal = is_causal  # read by the sdpa kernel wrapper
        self.is_cross_attention = is_cross_attention
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def _heads(self, states: torch.Tensor) -> torch.Tensor:
        return states.view(*states.shape[:-1], self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, head_dim)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        key_value_states: torch.Tensor | None = None,
        cache: Cache | None = None,
    ) -> torch.Tensor:
        batch_size, query_length = hidden_states.shape[:2]
        query_states = self._heads(self.q_proj(hidden_states))  # (B, H, Tq, head_dim)

        if self.is_cross_attention:
            layer_cache = cache.cross_attention_cache if cache is not None else None
            if cache is not None and cache.is_updated.get(self.layer_idx):
                # The encoder states do not change during generation: reuse their projections.
                key_states = layer_cache.layers[self.layer_idx].keys
                value_states = layer_cache.layers[self.layer_idx].values
            else:
                key_states = self._heads(self.k_proj(key_value_states))  # (B, H, S, head_dim)
                value_states = self._heads(self.v_proj(key_value_states))
                if cache is not None:
                    key_states, value_states = layer_cache.update(key_states, value_states, self.layer_idx)
                    cache.is_updated[self.layer_idx] = True
        else:
            key_states = self._heads(self.k_proj(hidden_states))  # (B, H, Tq, head_dim)
            value_states = self._heads(self.v_proj(hidden_states))
            if cache is not None:
                layer_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
                # (B, H, past + Tq, head_dim)
                key_states, value_states = layer_cache.update(key_states, value_states, self.layer_idx)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, _ = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
        )
        attn_output = attn_output.reshape(batch_size, query_length, -1)  # (B, Tq, C)
        return self.o_proj(attn_output)


class Seq2SeqTransformerFeedForward(nn.Module):
    """Position-wise feed-forward: Linear -> activation -> dropout -> Linear."""

    def __init__(self, config: Seq2SeqTransformerConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.activation_dropout(self.act(self.fc1(hidden_states))))


class Seq2SeqTransformerEncoderLayer(GradientCheckpointingLayer):
    """Pre-norm encoder block: x + SelfAttn(LN(x)), then x + FFN(LN(x))."""

    def __init__(self, config: Seq2SeqTransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = Seq2SeqTransformerAttention(config, layer_idx, is_causal=False, is_cross_attention=False)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = Seq2SeqTransformerFeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        hidden_states = hidden_states + self.dropout(
            self.self_attn(self.self_attn_layer_norm(hidden_states), attention_mask)
        )
        return hidden_states + self.dropout(self.feed_forward(self.final_layer_norm(hidden_states)))


class Seq2SeqTransformerDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm decoder block: causal self-attention, cross-attention to the encoder, feed-forward."""

    def __init__(self, config: Seq2SeqTransformerConfig, layer_idx: int):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = Seq2SeqTransformerAttention(config, layer_idx, is_causal=True, is_cross_attention=False)
        self.cross_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.cross_attn = Seq2SeqTransformerAttention(config, layer_idx, is_causal=False, is_cross_attention=True)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.feed_forward = Seq2SeqTransformerFeedForward(config)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        cache: Cache | None = None,
    ) -> torch.Tensor:
        hidden_states = hidden_states + self.dropout(
            self.self_attn(self.self_attn_layer_norm(hidden_states), attention_mask, cache=cache)
        )
        hidden_states = hidden_states + self.dropout(
            self.cross_attn(
                self.cross_attn_layer_norm(hidden_states),
                encoder_attention_mask,
                key_value_states=encoder_hidden_states,
                cache=cache,
            )
        )
        return hidden_states + self.dropout(self.feed_forward(self.final_layer_norm(hidden_states)))


def _check_length(length: int, config: Seq2SeqTransformerConfig, what: str) -> None:
    if length > config.max_position_embeddings:
        raise ValueError(
            f"the {what} is {length} tokens long but the model takes at most max_position_embeddings="
            f"{config.max_position_embeddings}; shorten it (truncate the input or lower max_new_tokens)"
        )


class Seq2SeqTransformerEncoder(nn.Module):
    """The encoder stack: token embedding + sinusoidal positions, `encoder_layers` blocks, a final LayerNorm."""

    main_input_name = "input_ids"

    def __init__(self, config: Seq2SeqTransformerConfig):
        super().__init__()
        self.config = config
        # Tied to the model's `shared` embedding (the one vocabulary of source and target).
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            [Seq2SeqTransformerEncoderLayer(config, layer_idx) for layer_idx in range(config.encoder_layers)]
        )
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds to the encoder")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale  # (B, S, C)
        batch_size, source_length = inputs_embeds.shape[:2]
        _check_length(source_length, self.config, "source")
        if attention_mask is not None:
            # Count only real tokens, so left or right padding leaves every real token's position unchanged.
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, S)
        else:
            position_ids = torch.arange(source_length, device=inputs_embeds.device).expand(batch_size, -1)
        positions = sinusoidal_positions(position_ids, self.config.hidden_size).to(inputs_embeds.dtype)
        hidden_states = self.dropout(inputs_embeds + positions)  # (B, S, C)

        mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=attention_mask
        )
        all_hidden_states = () if output_hidden_states else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states = layer(hidden_states, mask)
        hidden_states = self.layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states)


class Seq2SeqTransformerOutputLayerNorm(nn.LayerNorm):
    """The decoder's last LayerNorm, whose output the LM head reads; its own class so that init can find it.

    Its gain starts below 1 so that the untrained model's logits are small (see `_init_weights`).
    """


class Seq2SeqTransformerDecoder(nn.Module):
    """The decoder stack: causal self-attention over the target so far, cross-attention to the encoder output."""

    def __init__(self, config: Seq2SeqTransformerConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.embed_scale = math.sqrt(config.hidden_size) if config.scale_embedding else 1.0
        self.dropout = nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            [Seq2SeqTransformerDecoderLayer(config, layer_idx) for layer_idx in range(config.decoder_layers)]
        )
        self.layer_norm = Seq2SeqTransformerOutputLayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of decoder_input_ids or decoder_inputs_embeds to the decoder")
        if encoder_hidden_states is None:
            raise ValueError("the decoder needs encoder_hidden_states (pass input_ids or encoder_outputs)")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale  # (B, T, C)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        batch_size, target_length = inputs_embeds.shape[:2]
        past_length = cache.get_seq_length() if cache is not None else 0
        _check_length(past_length + target_length, self.config, "target")
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, past_length + target_length, device=inputs_embeds.device)

        position_ids = torch.arange(past_length, past_length + target_length, device=inputs_embeds.device)
        positions = sinusoidal_positions(position_ids.expand(batch_size, -1), self.config.hidden_size)
        hidden_states = self.dropout(inputs_embeds + positions.to(inputs_embeds.dtype))  # (B, T, C)

        self_attention_cache = cache.self_attention_cache if isinstance(cache, EncoderDecoderCache) else cache
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=attention_mask,
            **{_CACHE: self_attention_cache},
        )
        cross_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=hidden_states,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        all_hidden_states = () if output_hidden_states else None
        for layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states = layer(hidden_states, causal_mask, encoder_hidden_states, cross_mask, cache=cache)
        hidden_states = self.layer_norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, **{_CACHE: cache if use_cache else None}
        )


# The largest spread of an untied head's logits at init: about 0.3**2 / 2 = 0.045 nats above ln(vocab_size).
_MAX_INITIAL_LOGIT_STD = 0.3


class Seq2SeqTransformerPreTrainedModel(PreTrainedModel):
    """Weight init and the class flags transformers reads (attention kernels, gradient checkpointing, ...)."""

    config_class = Seq2SeqTransformerConfig
    config: Seq2SeqTransformerConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["Seq2SeqTransformerEncoderLayer", "Seq2SeqTransformerDecoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False
    _supports_flex_attn = False

    # Every Auto class of the family and the class it builds: `save_pretrained` writes them all into `auto_map`.
    _auto_map_classes: dict[str, str] = {
        "AutoModel": "Seq2SeqTransformerModel",
        "AutoModelForSeq2SeqLM": "Seq2SeqTransformerForConditionalGeneration",
    }

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`; the folder's `auto_map` names every Auto class of the family.

        transformers records only the Auto class of the class that saves, so a folder saved by one class would not
        load with `trust_remote_code=True` through the family's other Auto classes (`AutoModel` on a causal-LM
        folder, for instance).
        """
        if self._auto_class is not None:  # the code travels with the weights (see `register_for_auto_class`)
            module = type(self).__module__.rsplit(".", 1)[-1]
            config_module = type(self.config).__module__.rsplit(".", 1)[-1]
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoConfig": f"{config_module}.{type(self.config).__name__}",
                **{auto_class: f"{module}.{name}" for auto_class, name in self._auto_map_classes.items()},
            }
        return super().save_pretrained(save_directory, *args, **kwargs)

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, nn.Embedding) and self.config.scale_embedding:
            # std hidden_size**-0.5, times the sqrt(hidden_size) scale, gives unit-variance token vectors: the scale
            # of the sinusoids they are added to.
            init.normal_(module.weight, mean=0.0, std=self.config.hidden_size**-0.5)
        if isinstance(module, Seq2SeqTransformerOutputLayerNorm) and self.config.tie_word_embeddings:
            # Normed states of norm ~1 against embedding rows of norm ~1: logits start at unit scale, not at
            # ~sqrt(hidden_size) for the token just fed in (see the module docstring).
            init.constant_(module.weight, self.config.hidden_size**-0.5)
        elif isinstance(module, Seq2SeqTransformerOutputLayerNorm):
            # Untied head rows of std initializer_range: cap the logits' initial spread (a Gaussian spread s adds
            # about s**2 / 2 nats to ln(vocab_size)); the gain stays 1 up to width 225 at std 0.02.
            spread = self.config.initializer_range * self.config.hidden_size**0.5
            init.constant_(module.weight, min(1.0, _MAX_INITIAL_LOGIT_STD / spread) if spread > 0 else 1.0)


class Seq2SeqTransformerModel(Seq2SeqTransformerPreTrainedModel):
    """The bare encoder-decoder: returns the decoder's last hidden states (and the encoder's) without a head."""

    # Source and target share one vocabulary and one embedding matrix, whatever `tie_word_embeddings` says
    # (that option only concerns the output layer), hence the override of `get_expanded_tied_weights_keys`.
    _tied_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: Seq2SeqTransformerConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.hidden_size)
        self.encoder = Seq2SeqTransformerEncoder(config)
        self.decoder = Seq2SeqTransformerDecoder(config)
        self.post_init()

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return dict(self._tied_weights_keys)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = value
        self.encoder.embed_tokens = value
        self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> Seq2SeqTransformerEncoder:
        return self.encoder

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput:
        r"""Encode the source (unless `encoder_outputs` are given) and decode the target.

        Args:
            input_ids: Source token ids `(batch, source_length)`.
            attention_mask: 1 for real source tokens, 0 for padding.
            decoder_input_ids: Target ids read by the decoder `(batch, target_length)`: the decoder start token,
                then the target shifted right (see `shift_tokens_right`); during cached generation only the new ones.
            decoder_attention_mask: 1 for real decoder inputs, 0 for padding (optional; the mask is causal anyway).
            encoder_outputs: A previous encoder output to reuse, as generation does after the first step.
            cache: An `EncoderDecoderCache` from a previous step.
            inputs_embeds: Source embeddings in place of `input_ids`.
            decoder_inputs_embeds: Decoder input embeddings in place of `decoder_input_ids`.
            use_cache: Return the cache (defaults to `config.use_cache`).
            output_hidden_states: Also return the hidden states after each block of both stacks.

        Returns:
            `Seq2SeqModelOutput` with `last_hidden_state` `(batch, target_length, hidden_size)`, `cache` and the
            encoder's `encoder_last_hidden_state`.
        """
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        output_hidden_states = output_hidden_states or self.config.output_hidden_states
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(
                last_hidden_state=encoder_outputs[0],
                hidden_states=encoder_outputs[1] if len(encoder_outputs) > 1 else None,
            )
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError("pass decoder_input_ids (or labels to the conditional-generation model)")

        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=kwargs.pop("past_key_values", cache),  # generation before transformers 5.24 passes the old name
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            **{_CACHE: getattr(decoder_outputs, _CACHE)},
            decoder_hidden_states=decoder_outputs.hidden_states,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )


class Seq2SeqTransformerForConditionalGeneration(Seq2SeqTransformerPreTrainedModel, GenerationMixin):
    """The encoder-decoder with its output layer: the model to train on (source, target) pairs and to `generate`."""

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: Seq2SeqTransformerConfig):
        super().__init__(config)
        self.model = Seq2SeqTransformerModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_encoder(self, modality: str | None = None) -> Seq2SeqTransformerEncoder:
        return self.model.encoder

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The decoder inputs for `labels` (used by `DataCollatorForSeq2Seq`)."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        **kwargs,
    ) -> Seq2SeqLMOutput:
        r"""Next-token logits over the target, and the cross-entropy loss when `labels` are given.

        Args:
            input_ids: Source token ids `(batch, source_length)`.
            attention_mask: 1 for real source tokens, 0 for padding.
            decoder_input_ids: Decoder inputs; built from `labels` by shifting them right when not given.
            decoder_attention_mask: 1 for real decoder inputs, 0 for padding (optional).
            encoder_outputs: A previous encoder output to reuse.
            cache: An `EncoderDecoderCache` from a previous step.
            inputs_embeds: Source embeddings in place of `input_ids`.
            decoder_inputs_embeds: Decoder input embeddings in place of `decoder_input_ids`.
            labels: Target ids `(batch, target_length)`, -100 where not scored (padding).
            use_cache: Return the cache (off when `labels` are given: training needs none).
            output_hidden_states: Also return the hidden states of both stacks.
            num_items_in_batch: Scored tokens in the whole (gradient-accumulated) batch, passed by the Trainer so
                the loss is a true per-token mean across accumulation steps.

        Returns:
            `Seq2SeqLMOutput` with `logits` `(batch, target_length, vocab_size)`, `loss` and `cache`.
        """
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=kwargs.pop("past_key_values", cache),  # generation before transformers 5.24 passes the old name
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        logits = self.lm_head(outputs.last_hidden_state)  # (B, T, V)

        loss = None
        if labels is not None:
            # Labels already line up with the logits (the decoder inputs are the shifted ones), so this is
            # transformers' unshifted token loss; `self.loss_function` would pick the shifting causal-LM one.
            loss = ForMaskedLMLoss(logits, labels, self.config.vocab_size, num_items_in_batch=num_items_in_batch)

        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            **{_CACHE: getattr(outputs, _CACHE)},
            decoder_hidden_states=outputs.decoder_hidden_states,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
        )


__all__ = [
    "Seq2SeqTransformerPreTrainedModel",
    "Seq2SeqTransformerModel",
    "Seq2SeqTransformerForConditionalGeneration",
]
