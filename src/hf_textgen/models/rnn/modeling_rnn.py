"""Recurrent language models (LSTM / GRU / Elman RNN) as transformers models.

The backbone is the classic one: token embedding -> stacked recurrent layers -> dropout. Training and prompt
processing run torch's fused `nn.LSTM` / `nn.GRU` / `nn.RNN` over the whole sequence; generation keeps each layer's
final state in transformers' `Cache` (one recurrent-state slot per layer, reordered by beam search), so a new token
costs the same however long the context is.

Padding: positions where `attention_mask == 0` never touch the state. Each row's real tokens are moved to the front
(a stable per-row permutation), run as a packed sequence, and the outputs moved back, so a left-padded row produces
exactly what the same row produces alone.

This file imports only torch, transformers and its sibling configuration: it is the code that travels with a saved
model for `trust_remote_code=True`.
"""

from collections.abc import Callable
from functools import partial

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from transformers import Cache, DynamicCache, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutput,
)
from transformers.utils import can_return_tuple

from .configuration_rnn import RNNConfig

# transformers 5.24 renamed the cache from `past_key_values` to `cache` (output fields and `forward` arguments). A
# saved model runs under whatever transformers its user has, so this file speaks the installed release's name.
_CACHE = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"


class _PaddingPlan:
    """How to run a masked batch as a packed sequence: computed once per forward, shared by every layer."""

    def __init__(self, attention_mask: torch.Tensor):
        self.mask = attention_mask.bool()  # (B, T)
        self.lengths = self.mask.sum(dim=1)  # (B,)
        # A stable sort on "is padding" lists each row's real positions first, in their original order.
        self.order = torch.argsort((~self.mask).to(torch.int8), dim=1, stable=True)  # (B, T)
        self.empty_rows = self.lengths == 0  # (B,) rows with no real token keep their incoming state
        # `pack_padded_sequence` wants lengths >= 1 on the CPU; an empty row runs one throw-away step.
        self.pack_lengths = self.lengths.clamp(min=1).cpu()

    def run(
        self, rnn: Callable, inputs: torch.Tensor, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Run `rnn` (a torch recurrent module's forward) on the real tokens of each row, packed."""
        batch_size, seq_len, _ = inputs.shape
        gather_index = self.order.unsqueeze(-1).expand(-1, -1, inputs.shape[-1])
        compact = inputs.gather(1, gather_index)  # (B, T, D_in), real tokens first
        packed = pack_padded_sequence(compact, self.pack_lengths, batch_first=True, enforce_sorted=False)
        packed_output, final_state = rnn(packed, state)
        compact_output, _ = pad_packed_sequence(packed_output, batch_first=True, total_length=seq_len)  # (B, T, D)
        scatter_index = self.order.unsqueeze(-1).expand(-1, -1, compact_output.shape[-1])
        outputs = torch.zeros_like(compact_output).scatter(1, scatter_index, compact_output)  # back in place
        outputs = outputs * self.mask.unsqueeze(-1).to(outputs.dtype)  # padding positions output zeros
        if bool(self.empty_rows.any()):
            if state is None:  # the incoming state was the zero state
                state = (
                    tuple(torch.zeros_like(part) for part in final_state)
                    if isinstance(final_state, tuple)
                    else torch.zeros_like(final_state)
                )
            keep = self.empty_rows.view(1, batch_size, 1)
            if isinstance(final_state, tuple):
                final_state = tuple(torch.where(keep, old, new) for old, new in zip(state, final_state))
            else:
                final_state = torch.where(keep, state, final_state)
        return outputs, final_state


# Gain of the final RMSNorm at init: the logits then start with spread ~0.3 (tied rows of norm ~1, or an untied head
# at fan-in scale), about 0.05 nats above ln(vocab_size); see RNNConfig, "Initialisation".
_FINAL_NORM_GAIN = 0.3
# The last LSTM layer, whose outputs the final norm rescales, starts at this fraction of torch's init bound: Adam moves
# each weight by about the learning rate per step, so behind a scale-invariant norm a smaller layer learns faster
# relative to its size. Measured to help the LSTM only; see RNNConfig, "Initialisation".
_LAST_LAYER_INIT_SCALE = 1 / 5


class RNNScaledEmbedding(nn.Embedding):
    """Token embeddings multiplied by `embed_scale` (sqrt of the width with `scale_embedding`, else 1), as Gemma's.

    The scale lives in the module, so `get_input_embeddings()(input_ids)` gives exactly the vectors the model feeds
    its first layer, and `inputs_embeds` made that way match `input_ids`.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, embed_scale: float = 1.0):
        super().__init__(num_embeddings, embedding_dim)
        self.embed_scale = embed_scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embeddings = super().forward(input_ids)  # (B, T, E)
        # A scale of 1 (configs saved before `scale_embedding`) skips the product: exactly the old outputs.
        return embeddings * self.embed_scale if self.embed_scale != 1.0 else embeddings


def _single_step(
    rnn: nn.RNNBase, inputs: torch.Tensor, state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None
) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
    """One time step (a decode step) with torch's fused cell kernel: the same maths as the sequence kernel without
    its per-call setup, which costs more than the step itself at generation sizes."""
    step_input = inputs[:, 0]  # (B, D_in)
    weights = (rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0)
    if state is None:
        zeros = step_input.new_zeros(1, step_input.shape[0], rnn.hidden_size)  # (1, B, H)
        state = (zeros, zeros) if isinstance(rnn, nn.LSTM) else zeros
    if isinstance(rnn, nn.LSTM):
        hidden, cell = torch.lstm_cell(step_input, (state[0][0], state[1][0]), *weights)  # (B, H) each
        return hidden.unsqueeze(1), (hidden.unsqueeze(0), cell.unsqueeze(0))
    cell_function = torch.gru_cell if isinstance(rnn, nn.GRU) else torch.rnn_tanh_cell
    hidden = cell_function(step_input, state[0], *weights)  # (B, H)
    return hidden.unsqueeze(1), hidden.unsqueeze(0)


class _RecurrentLayer(nn.Module):
    """One recurrent layer's whole step over a sequence: the decode-step kernel, the fused sequence kernel, or the
    packed run of a padded batch.

    `init_scale` multiplies torch's init bound for this layer's weights (`RNNModel` lowers it for the last LSTM layer
    when a final norm follows it).

    Each concrete layer is also torch's `nn.LSTM` / `nn.GRU` / `nn.RNN`, so its parameters keep torch's names
    (`weight_ih_l0`, ...). Every path reads the weights inside this `forward`, so a wrapper around the call sees
    them all: PEFT's adapters on the parameters (`target_parameters`) substitute the adapted weights for the duration
    of the call, and `RNNModel` checkpoints activations around the call (one layer at a time).
    """

    init_scale: float = 1.0

    def forward(
        self,
        hidden_states: torch.Tensor,
        state: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        padding_plan: _PaddingPlan | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """`(B, T, D_in)` inputs and the incoming state (None: zeros) -> `(B, T, H * directions)` outputs and the
        final state; `padding_plan` runs a padded batch's real tokens only."""
        if padding_plan is not None:
            return padding_plan.run(super().forward, hidden_states, state)
        if hidden_states.shape[1] == 1 and not self.bidirectional:
            return _single_step(self, hidden_states, state)
        return super().forward(hidden_states, state)


class LSTMLayer(_RecurrentLayer, nn.LSTM):
    pass


class GRULayer(_RecurrentLayer, nn.GRU):
    pass


class ElmanRNNLayer(_RecurrentLayer, nn.RNN):
    pass


_LAYER_CLASSES = {"lstm": LSTMLayer, "gru": GRULayer, "rnn": ElmanRNNLayer}


class RNNPreTrainedModel(PreTrainedModel):
    """Weight initialisation and the flags transformers reads (stateful: no assisted decoding, no cache cropping)."""

    config: RNNConfig
    config_class = RNNConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    _is_stateful = True
    supports_gradient_checkpointing = True
    _no_split_modules = ["LSTMLayer", "GRULayer", "ElmanRNNLayer"]

    # Every Auto class of the family and the class it builds: `save_pretrained` writes them all into `auto_map`.
    _auto_map_classes: dict[str, str] = {
        "AutoModel": "RNNModel",
        "AutoModelForCausalLM": "RNNForCausalLM",
        "AutoModelForSequenceClassification": "RNNForSequenceClassification",
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
        std = self.config.initializer_range
        if isinstance(module, nn.RNNBase):
            # torch's own recurrent init, U(-1/sqrt(H), 1/sqrt(H)), keeps tanh/sigmoid gates out of saturation; the
            # LSTM layer under the final norm starts smaller (`_LAST_LAYER_INIT_SCALE`) so that it learns faster.
            bound = getattr(module, "init_scale", 1.0) * module.hidden_size**-0.5
            for name, param in module.named_parameters():
                init.uniform_(param, -bound, bound)
                # Forget-gate bias 1 (Jozefowicz et al. 2015): remember by default early in training. The slice loses
                # the "already loaded" flag that `init` checks, so check it on the parameter itself.
                is_loaded = getattr(param, "_is_hf_initialized", False)
                if isinstance(module, nn.LSTM) and name.startswith("bias_ih") and not is_loaded:
                    init.constant_(param[module.hidden_size : 2 * module.hidden_size], 1.0)
        elif isinstance(module, nn.Embedding):
            # Unit-scale inputs: with a small std the signal shrinks through each stacked layer and a 4-layer LSTM sits
            # at unigram loss for hundreds of steps (nanoGPT's char recipe). Scaled embeddings reach unit scale through
            # their sqrt(width) factor, so their rows have norm ~1 as a tied head (see RNNConfig, "Initialisation").
            width = module.embedding_dim
            init.normal_(module.weight, mean=0.0, std=width**-0.5 if self.config.scale_embedding else 1.0)
        elif isinstance(module, nn.RMSNorm):
            init.constant_(module.weight, _FINAL_NORM_GAIN)
        elif isinstance(module, nn.Linear):
            # An untied LM head at fan-in scale (LeCun et al. 1998) starts with the same logits as the tied one.
            is_untied_lm_head = module is getattr(self, "lm_head", None) and not self.config.tie_word_embeddings
            init.normal_(module.weight, mean=0.0, std=self.config.hidden_size**-0.5 if is_untied_lm_head else std)
            if module.bias is not None:
                init.zeros_(module.bias)


class RNNModel(RNNPreTrainedModel):
    """The recurrent backbone: embedding, `num_hidden_layers` LSTM/GRU/RNN layers, dropout.

    Returns a `BaseModelOutputWithPast` whose `cache` holds each layer's final state (unidirectional only).
    """

    def __init__(self, config: RNNConfig):
        config.validate_architecture()  # fields may have been edited since the config was built
        super().__init__(config)
        layer_class = _LAYER_CLASSES[config.cell_type]
        num_directions = 2 if config.bidirectional else 1
        self.embed_tokens = RNNScaledEmbedding(
            config.vocab_size,
            config.input_embedding_size,
            embed_scale=config.input_embedding_size**0.5 if config.scale_embedding else 1.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        # One module per layer (not `num_layers=`): each layer gets its own cache slot and dropout in between.
        self.layers = nn.ModuleList(
            layer_class(
                input_size=config.input_embedding_size if index == 0 else config.hidden_size * num_directions,
                hidden_size=config.hidden_size,
                batch_first=True,
                bidirectional=config.bidirectional,
            )
            for index in range(config.num_hidden_layers)
        )
        self.gradient_checkpointing = (
            False  # set by `gradient_checkpointing_enable`, with `_gradient_checkpointing_func`
        )
        # Normalises the last layer's outputs to rms _FINAL_NORM_GAIN at init, whatever the cell and depth.
        self.norm = nn.RMSNorm(config.hidden_size * num_directions, eps=1e-6) if config.final_norm else None
        if config.final_norm and config.cell_type == "lstm":
            self.layers[-1].init_scale = _LAST_LAYER_INIT_SCALE
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def _read_state(self, cache: Cache | None, layer_idx: int) -> torch.Tensor | tuple[torch.Tensor, ...] | None:
        """The layer's cached state in the `(1, B, H)` layout torch's RNNs take, or None to start from zeros."""
        if cache is None or not cache.has_previous_state(layer_idx):
            return None
        # The layer's own slots, not `cache.get_recurrent_state`, which transformers only has from 5.24 on.
        slots = cache.layers[layer_idx].recurrent_states
        states = tuple(
            slots[state_idx].unsqueeze(0)  # (B, H) -> (1, B, H)
            for state_idx in range(self.config.number_of_conv_states)
        )
        return states if len(states) == 2 else states[0]

    def _write_state(self, cache: Cache, layer_idx: int, state: torch.Tensor | tuple[torch.Tensor, ...]) -> None:
        states = state if isinstance(state, tuple) else (state,)
        for state_idx, tensor in enumerate(states):
            cache.update_recurrent_state(tensor[0], layer_idx, state_idx=state_idx)  # (1, B, H) -> (B, H)
            # transformers flags a slot as filled only on conv-state updates; we have recurrent state only.
            cache.layers[layer_idx].has_previous_state[state_idx] = True

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        """Run the recurrent stack.

        Args:
            input_ids: `(batch, seq_len)` token ids (or give `inputs_embeds`).
            attention_mask: `(batch, seq_len)`, 1 for real tokens and 0 for padding; padding never moves the state.
                A mask that also covers the cached past (`(batch, past + seq_len)`) is accepted.
            inputs_embeds: `(batch, seq_len, embedding_size)` instead of `input_ids`.
            cache: the state left by a previous call; the new tokens continue from it. Updated in place.
            use_cache: return the (possibly new) cache; defaults to `config.use_cache` outside training.
            output_hidden_states: also return the embeddings and every layer's outputs.

        Returns:
            A `BaseModelOutputWithPast` with `last_hidden_state` `(batch, seq_len, hidden_size * directions)`, the
            `cache` and, on request, `hidden_states`; a tuple of the same fields with `return_dict=False`.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        cache = kwargs.pop("past_key_values", cache)  # generation before transformers 5.24 passes the old name
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        if self.config.bidirectional:
            if cache is not None:
                raise ValueError("A bidirectional RNN reads the whole input at once, so it cannot continue a cache.")
            use_cache = False
        if use_cache and cache is None:
            cache = DynamicCache(config=self.config)
        if not use_cache:
            cache = None

        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)  # (B, T, E)
        # transformers' convention lets the mask cover the cached past too; only the new positions matter here.
        if attention_mask is not None:
            attention_mask = attention_mask[:, -inputs_embeds.shape[1] :]  # (B, T)
        # Fully-real batches (decode steps, packed pretraining blocks) take the plain fused call.
        plan = None
        if attention_mask is not None and not bool(attention_mask.all()):
            plan = _PaddingPlan(attention_mask)

        hidden_states = self.dropout(inputs_embeds)
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer_idx, layer in enumerate(self.layers):
            if layer_idx > 0:
                hidden_states = self.dropout(hidden_states)
            state = self._read_state(cache, layer_idx)
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                # Around the layer as installed, PEFT's wrapper included: backward then recomputes the layer with the
                # same (adapted) weights, which a checkpoint inside the layer would not see. Same granularity as
                # transformers' `GradientCheckpointingLayer`: one layer at a time.
                hidden_states, state = self._gradient_checkpointing_func(
                    partial(layer, padding_plan=plan), hidden_states, state
                )
            else:
                hidden_states, state = layer(hidden_states, state, padding_plan=plan)  # (B, T, H * directions)
            if cache is not None:
                self._write_state(cache, layer_idx, state)
            if self.norm is not None and layer_idx == len(self.layers) - 1:
                hidden_states = self.norm(hidden_states)  # only what leaves the stack; the state is not normalised
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        hidden_states = self.dropout(hidden_states)

        return BaseModelOutputWithPast(
            last_hidden_state=hidden_states, hidden_states=all_hidden_states, **{_CACHE: cache}
        )


class RNNForCausalLM(RNNPreTrainedModel, GenerationMixin):
    """RNN language model: the backbone plus a linear head over the vocabulary (tied to the embeddings by default)."""

    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: RNNConfig):
        if config.bidirectional:
            raise ValueError(
                "RNNConfig.bidirectional=True cannot be used by RNNForCausalLM: a causal language model must not see "
                "future tokens. Set bidirectional=False, or use RNNForSequenceClassification."
            )
        super().__init__(config)
        self.model = RNNModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear) -> None:
        self.lm_head = new_embeddings

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        # Before transformers 5.24 (the release that renamed the cache), `generate` asks every cache it made for its
        # length, which a cache of recurrent states only cannot tell; there the first step makes the cache instead.
        return _CACHE == "cache"

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        cache: Cache | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ) -> dict:
        cache = kwargs.pop("past_key_values", cache)  # the name before transformers 5.24
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **{_CACHE: cache},
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        # Once the prompt is in the state, each step feeds one real token: the mask only matters for the prompt.
        if use_cache and not is_first_iteration:
            model_inputs["attention_mask"] = None
        return model_inputs

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        cache: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Next-token logits, and the language-modelling loss when `labels` are given.

        Args:
            input_ids, attention_mask, inputs_embeds, cache, use_cache, output_hidden_states: as in
                `RNNModel.forward`.
            labels: `(batch, seq_len)` targets, usually `input_ids`; shifted inside, -100 is ignored.
            logits_to_keep: compute logits only for the last this-many positions (0 = all), or at these indices.
        """
        cache = kwargs.pop("past_key_values", cache)  # generation before transformers 5.24 passes the old name
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
        )
        hidden_states, cache = outputs.last_hidden_state, getattr(outputs, _CACHE)  # (B, T, H)
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        logits = self.lm_head(hidden_states[:, keep, :])  # (B, T_kept, V)

        loss = None
        if labels is not None:
            loss = self.loss_function(logits=logits, labels=labels, vocab_size=self.config.vocab_size, **kwargs)

        return CausalLMOutputWithPast(loss=loss, logits=logits, hidden_states=outputs.hidden_states, **{_CACHE: cache})


class RNNForSequenceClassification(RNNPreTrainedModel):
    """The backbone plus a linear classifier over the last real token (and the first, for the backward direction),
    or over the mean of the real tokens' outputs with `config.classifier_pooling="mean"`.

    Pooling reads the mask, so padding on either side gives the same logits as the unpadded text. Without an
    `attention_mask`, tokens equal to `config.pad_token_id` are treated as padding.
    """

    def __init__(self, config: RNNConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.model = RNNModel(config)
        num_directions = 2 if config.bidirectional else 1
        self.score = nn.Linear(config.hidden_size * num_directions, config.num_labels)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.embed_tokens = value

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        output_hidden_states: bool | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Class logits `(batch, num_labels)`, and the loss when `labels` are given.

        Args:
            input_ids, attention_mask, inputs_embeds, output_hidden_states: as in `RNNModel.forward`.
            labels: `(batch,)` class ids (or floats for regression / multi-label, following `config.problem_type`).
        """
        if attention_mask is None and input_ids is not None and self.config.pad_token_id is not None:
            attention_mask = (input_ids != self.config.pad_token_id).long()
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            use_cache=False,
            output_hidden_states=output_hidden_states,
        )
        hidden_states = outputs.last_hidden_state  # (B, T, H * directions)
        batch_size, seq_len, _ = hidden_states.shape
        rows = torch.arange(batch_size, device=hidden_states.device)
        if attention_mask is None:
            last = torch.full((batch_size,), seq_len - 1, device=hidden_states.device)
            first = torch.zeros(batch_size, dtype=torch.long, device=hidden_states.device)
        else:
            positions = torch.arange(seq_len, device=hidden_states.device).expand(batch_size, -1)  # (B, T)
            real = attention_mask.bool()
            last = torch.where(real, positions, -1).amax(dim=1).clamp(min=0)  # (B,)
            first = torch.where(real, positions, seq_len).amin(dim=1).clamp(max=seq_len - 1)  # (B,)
        hidden = self.config.hidden_size
        if self.config.classifier_pooling == "mean":
            if attention_mask is None:
                pooled = hidden_states.mean(1)  # (B, H * directions)
            else:
                weights = attention_mask.unsqueeze(-1).to(hidden_states.dtype)  # (B, T, 1)
                pooled = (hidden_states * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, H * directions)
        else:
            # The forward direction has read the whole text at its last token; the backward one at its first token.
            pooled = hidden_states[rows, last, :hidden]  # (B, H)
            if self.config.bidirectional:
                pooled = torch.cat([pooled, hidden_states[rows, first, hidden:]], dim=-1)  # (B, 2H)
        logits = self.score(pooled)  # (B, num_labels)

        loss = None
        if labels is not None:
            loss = self.loss_function(labels=labels, pooled_logits=logits, config=self.config)

        return SequenceClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)


__all__ = ["RNNForCausalLM", "RNNForSequenceClassification", "RNNModel", "RNNPreTrainedModel"]
