"""Decoder-only Transformer language model: the Llama architecture, computed faster.

The maths is exactly transformers' `LlamaForCausalLM` (pre-norm RMSNorm, rotary positions, SwiGLU, no biases,
optional grouped-query attention), so weights convert both ways (`convert_llama_state_dict`,
`convert_to_llama_state_dict`). What differs is how it is computed:

* one fused QKV projection and one fused gate/up projection: one matmul instead of three (two), and under bf16
  autocast the normalised activations are cast once instead of three (two) times;
* rotary embeddings written in place into the query/key halves (no `rotate_half` copy, no concatenation), with a
  custom backward that writes the q/k/v gradients into one buffer; half-width cos/sin computed once per forward;
* no attention mask is built when SDPA's causal path (or no mask at all, for a one-token decode step) is exact;
* in training with labels, the LM head and the cross-entropy run in row chunks that give the loss and its
  gradients together, so the (batch, seq_len, vocab) fp32 logits are never materialised;
* no per-call output-capturing hooks or decorators on the hot path.

This file imports only torch, transformers and its sibling config, so it travels to the Hub as remote code.
"""

import re
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.masking_utils import create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple

from .configuration_transformer import TransformerConfig

# transformers 5.24 renamed the cache from `past_key_values` to `cache` (output fields, `forward` and mask-function
# arguments). A saved model runs under whatever transformers its user has, so this file speaks the installed name.
_CACHE = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


class TransformerRMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale, statistics in fp32 (as Llama's `LlamaRMSNorm`)."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if hidden_states.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # torch's RMSNorm (a fused kernel where the backend has one), same maths as Llama's six ops.
            return F.rms_norm(hidden_states, self.weight.shape, self.weight, self.variance_epsilon)
        # Low-precision activations: normalise in fp32, round once, then scale (Llama's order of operations).
        normed = F.rms_norm(hidden_states.float(), self.weight.shape, None, self.variance_epsilon)
        return self.weight * normed.to(hidden_states.dtype)

    def extra_repr(self) -> str:
        return f"{tuple(self.weight.shape)}, eps={self.variance_epsilon}"


def _default_inv_freq(config: TransformerConfig) -> tuple[torch.Tensor, float]:
    base = config.rope_parameters["rope_theta"]
    dim = config.head_dim
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))  # (D/2,)
    return inv_freq, 1.0


class TransformerRotaryEmbedding(nn.Module):
    """Computes the rotary cos/sin for given positions, once per forward, shared by every layer.

    Only half of the head width is produced: the rotate-half form of RoPE uses the same angle for dims `i` and
    `i + head_dim / 2`, so the duplicated half Llama builds is never materialised.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.rope_type = config.rope_parameters.get("rope_type", "default")
        inv_freq, self.attention_scaling = self.compute_inv_freq(config)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    @staticmethod
    def compute_inv_freq(config: TransformerConfig) -> tuple[torch.Tensor, float]:
        """Returns the inverse frequencies `(head_dim / 2,)` and the cos/sin scale of the config's RoPE type."""
        rope_type = config.rope_parameters.get("rope_type", "default")
        if rope_type == "default":
            return _default_inv_freq(config)
        return ROPE_INIT_FUNCTIONS[rope_type](config)

    @torch.no_grad()
    def forward(self, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[..., None].float() * self.inv_freq.float()  # (B, T, D/2), fp32 as Llama
        cos = freqs.cos()
        sin = freqs.sin()
        if self.attention_scaling != 1.0:
            cos = cos * self.attention_scaling
            sin = sin * self.attention_scaling
        return cos, sin


def _rotate(states: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor, inverse: bool = False):
    """Writes `states` (B, T, heads, D) rotated by the angles of cos/sin (B, T, 1, D/2) into `out`.

    Rotate-half convention, element for element Llama's `x * cos + rotate_half(x) * sin`, but written into
    `out` halves directly: no `rotate_half` copy and no concatenation. `inverse` rotates by minus the angles,
    which is the gradient of the rotation.
    """
    half = states.shape[-1] // 2
    first, second = states[..., :half], states[..., half:]
    out_first, out_second = out[..., :half], out[..., half:]
    sign = -1.0 if inverse else 1.0
    torch.mul(first, cos, out=out_first).addcmul_(second, sin, value=-sign)  # x1 cos - x2 sin
    torch.mul(second, cos, out=out_second).addcmul_(first, sin, value=sign)  # x2 cos + x1 sin
    return out


def _rotate_query_key(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_heads: int, num_key_value_heads: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotated queries (B, T, H, D) and keys (B, T, K, D), as views of one new buffer, from (B, T, H+2K, D)."""
    num_qk_heads = num_heads + num_key_value_heads
    query_key = _rotate(qkv[:, :, :num_qk_heads], cos, sin, qkv.new_empty(*qkv.shape[:2], num_qk_heads, qkv.shape[3]))
    return query_key.split([num_heads, num_key_value_heads], dim=2)


class _RotaryQKV(torch.autograd.Function):
    """Splits the fused projection (B, T, H+2K, D) into rotated queries, rotated keys and values.

    A custom backward writes the three gradients straight into one (B, T, H+2K, D) buffer, where autograd would
    concatenate the split pieces and the rotation halves in several extra passes.
    """

    @staticmethod
    def forward(ctx, qkv, cos, sin, num_heads, num_key_value_heads):
        query, key = _rotate_query_key(qkv, cos, sin, num_heads, num_key_value_heads)
        value = qkv[:, :, num_heads + num_key_value_heads :].clone()  # (B, T, K, D)
        ctx.save_for_backward(cos, sin)
        ctx.num_heads = (num_heads, num_key_value_heads)
        return query, key, value

    @staticmethod
    def backward(ctx, grad_query, grad_key, grad_value):
        cos, sin = ctx.saved_tensors
        num_heads, num_key_value_heads = ctx.num_heads
        grad = grad_value.new_empty(*grad_value.shape[:2], num_heads + 2 * num_key_value_heads, grad_value.shape[3])
        grad_q, grad_k, grad_v = grad.split([num_heads, num_key_value_heads, num_key_value_heads], dim=2)
        _rotate(grad_query, cos, sin, grad_q, inverse=True)
        _rotate(grad_key, cos, sin, grad_k, inverse=True)
        grad_v.copy_(grad_value)
        return grad, None, None, None, None


def rotary_qkv(
    qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, num_heads: int, num_key_value_heads: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Queries (B, T, H, D) and keys (B, T, K, D) rotated by RoPE, and values (B, T, K, D), from (B, T, H+2K, D)."""
    if torch.compiler.is_compiling():
        # Dynamo rejects `out=` views; the compiler fuses the plain formula into one kernel anyway.
        query_key, value = qkv.split([num_heads + num_key_value_heads, num_key_value_heads], dim=2)
        first, second = query_key.chunk(2, dim=-1)
        query_key = torch.cat((first * cos - second * sin, second * cos + first * sin), dim=-1)
        query, key = query_key.split([num_heads, num_key_value_heads], dim=2)
        return query, key, value
    if torch.is_grad_enabled() and qkv.requires_grad:
        return _RotaryQKV.apply(qkv, cos, sin, num_heads, num_key_value_heads)
    # Inference: the same rotation, values stay a view of the projection (nothing to copy).
    query, key = _rotate_query_key(qkv, cos, sin, num_heads, num_key_value_heads)
    return query, key, qkv[:, :, num_heads + num_key_value_heads :]


def repeat_kv(hidden_states: torch.Tensor, n_rep: int) -> torch.Tensor:
    """Repeats each key/value head `n_rep` times: (B, K, S, D) -> (B, K * n_rep, S, D)."""
    if n_rep == 1:
        return hidden_states
    batch, num_key_value_heads, length, head_dim = hidden_states.shape
    hidden_states = hidden_states[:, :, None].expand(batch, num_key_value_heads, n_rep, length, head_dim)
    return hidden_states.reshape(batch, num_key_value_heads * n_rep, length, head_dim)


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
    """Plain attention with an additive mask; returns (B, T, H, D) outputs and (B, H, T, S) weights."""
    key = repeat_kv(key, module.num_key_value_groups)  # (B, H, S, D)
    value = repeat_kv(value, module.num_key_value_groups)
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, H, T, S)
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value)  # (B, H, T, D)
    return attn_output.transpose(1, 2).contiguous(), attn_weights  # (B, T, H, D)


class TransformerAttention(nn.Module):
    """Causal self-attention with one fused QKV projection, rotary positions and grouped-query heads."""

    def __init__(self, config: TransformerConfig, layer_idx: int) -> None:
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_key_value_heads = config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        self.is_causal = True
        # Rows: the query heads, then the key heads, then the value heads (Llama's q/k/v weights stacked).
        self.qkv_proj = nn.Linear(
            config.hidden_size, (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim, bias=False
        )
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=False)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, seq_len, _ = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(batch_size, seq_len, -1, self.head_dim)  # (B, T, H+2K, D)
        cos, sin = position_embeddings  # (B, T, 1, D/2)
        # Queries and keys rotate in the projection's (B, T, heads, D) layout; attention takes transposed views.
        query, key, value = rotary_qkv(
            qkv, cos.to(qkv.dtype), sin.to(qkv.dtype), self.num_heads, self.num_key_value_heads
        )
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)  # (B, heads, T, D)

        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)  # (B, K, S, D)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.attention_dropout if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )  # (B, T, H, D)
        attn_output = attn_output.reshape(batch_size, seq_len, -1)  # (B, T, H*D)
        return self.o_proj(attn_output), attn_weights


class TransformerMLP(nn.Module):
    """Gated feed-forward layer (SwiGLU with `hidden_act="silu"`), gate and up projections fused in one matmul."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        # Rows: the gate projection, then the up projection.
        self.gate_up_proj = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)
        self.act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(hidden_states).chunk(2, dim=-1)  # (B, T, I) each
        return self.down_proj(self.act_fn(gate) * up)  # (B, T, C)


class TransformerDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`."""

    def __init__(self, config: TransformerConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = TransformerAttention(config, layer_idx)
        self.mlp = TransformerMLP(config)
        self.input_layernorm = TransformerRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = TransformerRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.hidden_dropout = config.hidden_dropout

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_output, attn_weights = self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask, cache, **kwargs
        )
        if self.hidden_dropout and self.training:
            attn_output = F.dropout(attn_output, p=self.hidden_dropout, training=True)
        hidden_states = hidden_states + attn_output  # (B, T, C)
        mlp_output = self.mlp(self.post_attention_layernorm(hidden_states))
        if self.hidden_dropout and self.training:
            mlp_output = F.dropout(mlp_output, p=self.hidden_dropout, training=True)
        return hidden_states + mlp_output, attn_weights


class _LinearCrossEntropy(torch.autograd.Function):
    """Sum of token cross-entropies of `hidden @ weight.T` without materialising the (N, V) logits.

    The rows are processed in chunks of about 4M logits: each chunk's logits give its loss and, right away, the
    gradients of the loss with respect to the hidden states and the head weight (softmax minus one-hot), which
    backward only has to scale. Same matmuls as the plain head + `cross_entropy`, but no fp32 (N, V) tensors
    written, zero-filled and read back several times (freshly allocated, they also cost page faults).
    """

    @staticmethod
    def forward(ctx, hidden_states, weight, targets, compute_dtype, chunk_rows, ignore_index):
        # hidden_states (N, C), weight (V, C), targets (N,)
        with torch.autocast(hidden_states.device.type, enabled=False):
            hidden = hidden_states.to(compute_dtype)
            head = weight.to(compute_dtype)
            grad_hidden = torch.empty_like(hidden)  # (N, C)
            grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device)  # (V, C)
            loss_sum = torch.zeros((), dtype=torch.float32, device=weight.device)
            for start in range(0, hidden.shape[0], chunk_rows):
                chunk = hidden[start : start + chunk_rows]  # (n, C)
                chunk_targets = targets[start : start + chunk_rows]
                valid = chunk_targets != ignore_index  # (n,)
                safe_targets = torch.where(valid, chunk_targets, 0)[:, None]  # (n, 1)
                logits = chunk @ head.T  # (n, V)
                # fp32 statistics like Llama's loss; one fused pass, also reading bf16 logits directly.
                log_probs = torch.log_softmax(logits, dim=-1, dtype=torch.float32)  # (n, V)
                loss_sum -= log_probs.gather(1, safe_targets).squeeze(1).masked_fill(~valid, 0.0).sum()
                # d loss_sum / d logits = softmax - one_hot(target), zero on ignored rows; built in place.
                grad_logits = log_probs.exp_()
                grad_logits.scatter_add_(1, safe_targets, torch.full_like(safe_targets, -1.0, dtype=torch.float32))
                ignored_rows = (~valid).nonzero().squeeze(1)  # usually a few row ends: touch only those rows
                if ignored_rows.numel():
                    grad_logits.index_fill_(0, ignored_rows, 0.0)
                grad_logits = grad_logits.to(compute_dtype)
                torch.mm(grad_logits, head, out=grad_hidden[start : start + chunk_rows])
                if compute_dtype == torch.float32:
                    grad_weight.addmm_(grad_logits.T, chunk)
                else:
                    grad_weight.add_(grad_logits.T @ chunk)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.input_dtypes = (hidden_states.dtype, weight.dtype)
        return loss_sum

    @staticmethod
    def backward(ctx, grad_loss):
        grad_hidden, grad_weight = ctx.saved_tensors
        hidden_dtype, weight_dtype = ctx.input_dtypes
        grad_hidden = (grad_hidden * grad_loss).to(hidden_dtype)
        grad_weight = (grad_weight * grad_loss).to(weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None


def linear_cross_entropy(
    hidden_states: torch.Tensor,
    weight: torch.Tensor,
    labels: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
    **kwargs,
) -> torch.Tensor:
    """Causal-LM loss of the head `weight` on `hidden_states`, equal to transformers' `ForCausalLMLoss` on logits.

    Args:
        hidden_states: Final hidden states `(batch, seq_len, hidden_size)`.
        weight: The LM-head weight `(vocab_size, hidden_size)`.
        labels: Token ids `(batch, seq_len)`; shifted inside so position t predicts label t+1.
        num_items_in_batch: Divide the summed loss by this (the Trainer's count over gradient-accumulation
            steps) instead of averaging over this batch's non-ignored tokens.
        ignore_index: Label value that contributes no loss.
        shift_labels: Already shifted labels (used instead of `labels`).
        **kwargs: Ignored (the loss-kwargs the Trainer may pass to every loss).

    Returns:
        The scalar loss, in fp32.
    """
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]  # (B, T)
    targets = shift_labels.reshape(-1).to(hidden_states.device)  # (N,)
    hidden = hidden_states.reshape(-1, hidden_states.shape[-1])  # (N, C)
    device_type = hidden.device.type
    autocast = torch.is_autocast_enabled(device_type)
    compute_dtype = torch.get_autocast_dtype(device_type) if autocast else weight.dtype
    # About 2^22 fp32 logits (16 MiB) per chunk: big enough for efficient matmuls, small enough to stay cached.
    chunk_rows = max(16, 2**22 // weight.shape[0])
    loss_sum = _LinearCrossEntropy.apply(hidden, weight, targets, compute_dtype, chunk_rows, ignore_index)
    if num_items_in_batch is None:
        return loss_sum / (targets != ignore_index).sum()
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(loss_sum.device)
    return loss_sum / num_items_in_batch


# The largest spread of the logits at init: a Gaussian spread s adds about s**2 / 2 nats to ln(vocab_size), 0.045 here.
_MAX_INITIAL_LOGIT_STD = 0.3


class TransformerPreTrainedModel(PreTrainedModel):
    """Weight initialisation and the class flags transformers reads (attention backends, FSDP, compile)."""

    config_class = TransformerConfig
    config: TransformerConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerDecoderLayer"]
    _skip_keys_device_placement = [_CACHE]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True

    # Every Auto class of the family and the class it builds: `save_pretrained` writes them all into `auto_map`.
    _auto_map_classes: dict[str, str] = {
        "AutoModel": "TransformerModel",
        "AutoModelForCausalLM": "TransformerForCausalLM",
        "AutoModelForSequenceClassification": "TransformerForSequenceClassification",
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
        if module is getattr(self, "norm", None):
            # Normed states (rms 1) against head rows of std initializer_range give logits of spread
            # initializer_range * sqrt(hidden_size): 0.64 at width 1024, +0.2 nats of loss at init. The final norm's
            # gain starts just low enough to cap that spread (1 up to width 225 at std 0.02, so small models are
            # unchanged): the loss at init is ~ln(vocab_size) at any width. The gain is learned, and a checkpoint
            # keeps its own.
            spread = self.config.initializer_range * self.config.hidden_size**0.5
            init.constant_(module.weight, min(1.0, _MAX_INITIAL_LOGIT_STD / spread) if spread > 0 else 1.0)
        if isinstance(module, TransformerRotaryEmbedding):
            # A non-persistent buffer: rebuilt here because models loaded from a checkpoint start on "meta".
            inv_freq, _ = module.compute_inv_freq(module.config)
            init.copy_(module.inv_freq, inv_freq)


def _positions_from_mask(attention_mask: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Positions counting only attended tokens, so a left-padded row gets the positions it has alone."""
    positions = attention_mask.long().cumsum(-1) - 1  # (B, S)
    return positions.clamp(min=0)[:, -seq_len:]  # (B, T)


class TransformerModel(TransformerPreTrainedModel):
    """The decoder stack: token embeddings, `num_hidden_layers` decoder layers and a final RMSNorm.

    Args:
        config: The model configuration.
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList(
            [TransformerDecoderLayer(config, layer_idx) for layer_idx in range(config.num_hidden_layers)]
        )
        self.norm = TransformerRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = TransformerRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def _causal_mask(
        self,
        inputs_embeds: torch.Tensor,
        attention_mask: torch.Tensor | None,
        cache: Cache | None,
        position_ids: torch.Tensor,
        positions_given: bool,
        past_seen_tokens: int | torch.Tensor,
    ) -> torch.Tensor | None:
        seq_len = inputs_embeds.shape[1]
        if (
            attention_mask is None
            and self.config._attn_implementation == "sdpa"
            and (cache is None or not cache.is_compileable)
            # Given positions without a cache may describe packed sequences, which need a real mask.
            and (cache is not None or not positions_given)
            and (seq_len == 1 or past_seen_tokens == 0)
        ):
            # Nothing to mask beyond causality: SDPA's `is_causal` path (or, for one query, no mask) is exact.
            return None
        return create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            **{_CACHE: cache},
        )

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Runs the decoder stack.

        Args:
            input_ids: Token ids `(batch, seq_len)`.
            attention_mask: `(batch, past + seq_len)` with 1 for real tokens and 0 for padding (or a prepared 4D
                mask). Positions are derived from it when `position_ids` is not given, so left padding is exact.
            position_ids: Positions `(batch, seq_len)` of the tokens, for the rotary embeddings.
            cache: A transformers `Cache` (`DynamicCache`, `StaticCache`) holding earlier keys and values.
            inputs_embeds: Embeddings `(batch, seq_len, hidden_size)` to use instead of `input_ids`.
            use_cache: Whether to return the cache (defaults to `config.use_cache` in eval mode, off in training).
            output_attentions: Whether to return each layer's attention weights (needs `attn_implementation="eager"`).
            output_hidden_states: Whether to return the input of every layer and the final normalised output.

        Returns:
            A `BaseModelOutputWithPast` with `last_hidden_state` `(batch, seq_len, hidden_size)` and `cache`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
        cache = kwargs.pop("past_key_values", cache)  # generation before transformers 5.24 passes the old name
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if use_cache is None:
            # Training steps never read a cache back; building one would only copy keys and values.
            use_cache = self.config.use_cache and not self.training
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, C)
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)

        seq_len = inputs_embeds.shape[1]
        past_seen_tokens = cache.get_seq_length() if cache is not None else 0
        positions_given = position_ids is not None
        if position_ids is None:
            if attention_mask is not None and attention_mask.ndim == 2:
                position_ids = _positions_from_mask(attention_mask, seq_len)
            else:
                position_ids = torch.arange(seq_len, device=inputs_embeds.device) + past_seen_tokens
                position_ids = position_ids.unsqueeze(0)  # (1, T)

        causal_mask = self._causal_mask(
            inputs_embeds, attention_mask, cache, position_ids, positions_given, past_seen_tokens
        )
        cos, sin = self.rotary_emb(position_ids)  # (B, T, D/2)
        position_embeddings = (cos.unsqueeze(2), sin.unsqueeze(2))  # (B, T, 1, D/2), broadcast over heads

        all_hidden_states = () if output_hidden_states else None
        all_attentions = () if output_attentions else None
        if output_attentions:
            kwargs["output_attentions"] = True
        hidden_states = inputs_embeds
        for decoder_layer in self.layers:
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            hidden_states, attn_weights = decoder_layer(
                hidden_states,
                attention_mask=causal_mask,
                position_embeddings=position_embeddings,
                cache=cache,
                **kwargs,
            )
            if output_attentions:
                all_attentions += (attn_weights,)
        hidden_states = self.norm(hidden_states)
        if output_hidden_states:
            all_hidden_states += (hidden_states,)

        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states,
            hidden_states=all_hidden_states,
            attentions=all_attentions,
            **{_CACHE: cache if use_cache else None},
        )


class TransformerForCausalLM(TransformerPreTrainedModel, GenerationMixin):
    """The decoder stack with a language-modelling head (tied to the embeddings when `tie_word_embeddings`).

    Args:
        config: The model configuration.

    Example:

    ```python
    >>> from hf_textgen import TransformerConfig, TransformerForCausalLM
    >>> model = TransformerForCausalLM(TransformerConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=2,
    ...                                                  num_attention_heads=4, intermediate_size=172))
    >>> out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False)
    ```
    """

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}
    _pp_plan = {"lm_head": (["hidden_states"], ["logits"])}

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.model = TransformerModel(config)
        self.vocab_size = config.vocab_size
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Next-token logits (and the shifted cross-entropy loss when `labels` are given).

        Args:
            input_ids: Token ids `(batch, seq_len)`.
            attention_mask: `(batch, past + seq_len)`, 1 for real tokens and 0 for padding.
            position_ids: Positions `(batch, seq_len)`; derived from `attention_mask` when not given.
            cache: A transformers `Cache` holding earlier keys and values.
            inputs_embeds: Embeddings to use instead of `input_ids`.
            labels: Target ids `(batch, seq_len)`, -100 where no loss is wanted; shifted inside (like Llama).
            use_cache: Whether to return the cache.
            logits_to_keep: Compute logits only for the last `logits_to_keep` positions (0 means all), or for the
                given position indices; generation keeps only the last one.
            **kwargs: Passed to the backbone (`output_attentions`, `output_hidden_states`) and to the loss
                (`num_items_in_batch`).

        Returns:
            A `CausalLMOutputWithPast` with `loss`, `logits` `(batch, kept, vocab_size)` and `cache`. In training
            mode with `labels` (and `config.fused_loss_in_training`), `logits` is None: the loss is computed
            without materialising them.
        """
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=kwargs.pop("past_key_values", cache),  # generation before transformers 5.24 passes the old name
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=kwargs.pop("output_attentions", None),
            output_hidden_states=kwargs.pop("output_hidden_states", None),
        )
        hidden_states = outputs.last_hidden_state
        if (
            labels is not None
            and self.config.fused_loss_in_training
            and self.training
            and torch.is_grad_enabled()
            and not hasattr(self, "_loss_function")  # a user-set loss function needs the logits
            and not torch.compiler.is_compiling()  # the compiler fuses the plain head + loss itself
            # The fused loss reads the head's weight itself: a wrapped head (a PEFT adapter on it, a quantized or
            # hooked layer) must run its own forward, so it takes the plain head + loss below.
            and type(self.lm_head) is nn.Linear
            and not (self.lm_head._forward_hooks or self.lm_head._forward_pre_hooks)
        ):
            # A training step only needs the loss: skip the (B, T, V) logits and compute it chunk by chunk.
            loss = linear_cross_entropy(hidden_states, self.lm_head.weight, labels, **kwargs)
            return CausalLMOutputWithPast(
                loss=loss,
                hidden_states=outputs.hidden_states,
                attentions=outputs.attentions,
                **{_CACHE: getattr(outputs, _CACHE)},
            )

        if isinstance(logits_to_keep, int):
            if logits_to_keep:
                hidden_states = hidden_states[:, -logits_to_keep:]  # (B, kept, C)
        else:
            hidden_states = hidden_states[:, logits_to_keep]
        logits = self.lm_head(hidden_states)  # (B, kept, V)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{_CACHE: getattr(outputs, _CACHE)},
        )

    @classmethod
    def from_llama(cls, llama_model: nn.Module, **config_overrides) -> "TransformerForCausalLM":
        """Builds the equivalent model from a transformers `LlamaForCausalLM` (same function, fused weights).

        Args:
            llama_model: A `transformers.LlamaForCausalLM` instance (e.g. from `LlamaForCausalLM.from_pretrained`).
            **config_overrides: Config fields to set differently (e.g. `attn_implementation` is not one).

        Returns:
            A `TransformerForCausalLM` in the Llama model's dtype and device, in eval mode.
        """
        config = TransformerConfig.from_llama_config(llama_model.config, **config_overrides)
        model = cls(config)
        param = next(llama_model.parameters())
        model.to(device=param.device, dtype=param.dtype)
        _load_converted(model, convert_llama_state_dict(llama_model.state_dict(), config))
        return model.eval()

    def to_llama(self, **config_overrides) -> nn.Module:
        """Builds the equivalent transformers `LlamaForCausalLM` (same function, split weights).

        Args:
            **config_overrides: Fields to set differently on the `LlamaConfig`.

        Returns:
            A `transformers.LlamaForCausalLM` in this model's dtype and device, in eval mode.
        """
        from transformers import LlamaForCausalLM

        llama = LlamaForCausalLM(self.config.to_llama_config(**config_overrides))
        param = next(self.parameters())
        llama.to(device=param.device, dtype=param.dtype)
        _load_converted(llama, convert_to_llama_state_dict(self.state_dict(), self.config))
        return llama.eval()


def _load_converted(model: nn.Module, state_dict: dict[str, torch.Tensor]) -> None:
    """Loads a converted state dict; only a tied LM head may be absent from it or redundant in it."""
    if model.config.tie_word_embeddings:
        state_dict = {key: value for key, value in state_dict.items() if key != "lm_head.weight"}
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = [key for key in missing if not (key == "lm_head.weight" and model.config.tie_word_embeddings)]
    if missing or unexpected:
        raise ValueError(f"Converted weights do not fit the model: missing {missing}, unexpected {unexpected}.")


class TransformerForSequenceClassification(TransformerPreTrainedModel):
    """The decoder stack with a linear classifier on a summary of each sequence's hidden states.

    The summary is `config.classifier_pooling`: the hidden state of the last real token ("last", the default) or
    the mean over the real tokens ("mean"). Real tokens are where `attention_mask` is 1 (left or right padding
    both work); without a mask, the tokens that are not `pad_token_id`.

    Args:
        config: The model configuration (`num_labels`, `problem_type` as in transformers).
    """

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = TransformerModel(config)
        self.score = nn.Linear(config.hidden_size, config.num_labels, bias=False)
        self.post_init()

    def _real_tokens(
        self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor | None, batch_size: int, seq_len: int
    ) -> torch.Tensor | None:
        """`(B, T)` True where a token is real (not padding); None when the batch cannot say (one unpadded row)."""
        device = self.score.weight.device
        if attention_mask is not None and attention_mask.ndim == 2:
            return attention_mask[:, -seq_len:].to(device) != 0
        if input_ids is not None and self.config.pad_token_id is not None:
            return input_ids.to(device) != self.config.pad_token_id
        if batch_size != 1:
            raise ValueError(
                "Cannot find the real tokens of a batch without `attention_mask` or `config.pad_token_id`."
            )
        return None

    def _pool(self, hidden_states: torch.Tensor, real: torch.Tensor | None) -> torch.Tensor:
        """`(B, T, C)` -> `(B, C)` by `config.classifier_pooling`: the last real token or the mean of the real ones."""
        batch_size, seq_len = hidden_states.shape[:2]
        if real is None:
            real = torch.ones(batch_size, seq_len, dtype=torch.bool, device=hidden_states.device)
        if self.config.classifier_pooling == "mean":
            weights = real.unsqueeze(-1).to(hidden_states.dtype)  # (B, T, 1)
            return (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)
        last = (torch.arange(seq_len, device=real.device) * real).argmax(-1)  # (B,), rightmost real token
        return hidden_states[torch.arange(batch_size, device=hidden_states.device), last]

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        """Class logits `(batch, num_labels)` (and the loss when `labels` are given).

        Args:
            input_ids: Token ids `(batch, seq_len)`.
            attention_mask: `(batch, seq_len)`, 1 for real tokens and 0 for padding.
            position_ids: Positions `(batch, seq_len)`; derived from `attention_mask` when not given.
            cache: A transformers `Cache` holding earlier keys and values.
            inputs_embeds: Embeddings to use instead of `input_ids`.
            labels: `(batch,)` class ids, or floats for regression / multi-label (`config.problem_type`).
            use_cache: Whether to return the cache.
            **kwargs: `output_attentions`, `output_hidden_states`.

        Returns:
            A `SequenceClassifierOutputWithPast` with `loss` and `logits`.
        """
        outputs: BaseModelOutputWithPast = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=kwargs.pop("past_key_values", cache),  # generation before transformers 5.24 passes the old name
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            output_attentions=kwargs.pop("output_attentions", None),
            output_hidden_states=kwargs.pop("output_hidden_states", None),
        )
        hidden_states = outputs.last_hidden_state  # (B, T, C)
        real = self._real_tokens(input_ids, attention_mask, *hidden_states.shape[:2])
        logits = self.score(self._pool(hidden_states, real))  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, pooled_logits=logits, config=self.config)

        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{_CACHE: getattr(outputs, _CACHE)},
        )


_LLAMA_QKV = re.compile(r"^(.*\.self_attn\.)(q|k|v)_proj\.weight$")
_LLAMA_GATE_UP = re.compile(r"^(.*\.mlp\.)(gate|up)_proj\.weight$")


def convert_llama_state_dict(state_dict: dict[str, torch.Tensor], config: TransformerConfig | None = None) -> dict:
    """Converts a transformers Llama state dict into this model's (q/k/v and gate/up weights fused).

    Works for `LlamaForCausalLM`, `LlamaModel` and `LlamaForSequenceClassification` keys alike, since the module
    names are the same apart from the fused projections.

    Args:
        state_dict: The Llama model's `state_dict()`.
        config: Not needed in this direction (the key names say which weights to fuse); accepted for symmetry
            with `convert_to_llama_state_dict`, which needs the head counts.

    Returns:
        A new state dict for the matching `Transformer*` class.
    """
    converted, parts = {}, {}
    for key, tensor in state_dict.items():
        if match := _LLAMA_QKV.match(key):
            parts.setdefault(match.group(1) + "qkv_proj.weight", {})[match.group(2)] = tensor
        elif match := _LLAMA_GATE_UP.match(key):
            parts.setdefault(match.group(1) + "gate_up_proj.weight", {})[match.group(2)] = tensor
        elif not key.endswith("rotary_emb.inv_freq"):
            converted[key] = tensor
    for key, pieces in parts.items():
        order = ("q", "k", "v") if key.endswith("qkv_proj.weight") else ("gate", "up")
        missing = [name for name in order if name not in pieces]
        if missing:
            raise ValueError(f"Llama state dict lacks {missing} projection(s) for {key!r}.")
        converted[key] = torch.cat([pieces[name] for name in order], dim=0)
    return converted


def convert_to_llama_state_dict(state_dict: dict[str, torch.Tensor], config: TransformerConfig) -> dict:
    """Converts this model's state dict into a transformers Llama one (fused weights split back).

    Args:
        state_dict: A `Transformer*` model's `state_dict()`.
        config: Its `TransformerConfig` (for the head counts).

    Returns:
        A new state dict for the matching `Llama*` class.
    """
    q_size = config.num_attention_heads * config.head_dim
    kv_size = config.num_key_value_heads * config.head_dim
    converted = {}
    for key, tensor in state_dict.items():
        if key.endswith("self_attn.qkv_proj.weight"):
            prefix = key[: -len("qkv_proj.weight")]
            q, k, v = tensor.split([q_size, kv_size, kv_size], dim=0)
            converted.update({prefix + "q_proj.weight": q, prefix + "k_proj.weight": k, prefix + "v_proj.weight": v})
        elif key.endswith("mlp.gate_up_proj.weight"):
            prefix = key[: -len("gate_up_proj.weight")]
            gate, up = tensor.chunk(2, dim=0)
            converted.update({prefix + "gate_proj.weight": gate, prefix + "up_proj.weight": up})
        else:
            converted[key] = tensor
    return converted


__all__ = [
    "TransformerForCausalLM",
    "TransformerForSequenceClassification",
    "TransformerModel",
    "TransformerPreTrainedModel",
    "convert_llama_state_dict",
    "convert_to_llama_state_dict",
]
