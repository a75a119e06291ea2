"""Discriminative (layer-wise) learning rates for fine-tuning, as in ULMFiT (Howard & Ruder, 2018).

The parameters are grouped by depth: the embeddings, each decoder / recurrent layer, and everything above the
last layer (final norm, task head). The top group trains at the full learning rate and each group below it at
`decay` times the one above, so the new head learns fast while the pretrained layers, the lowest most, move
little. `hf-textgen finetune` from a pretrained folder uses it by default (`--layerwise_lr_decay`); the
measurements that chose it are in the README's "What pretraining buys".
"""

from __future__ import annotations

import torch
from torch import nn


def depth_groups(model: nn.Module) -> list[list[nn.Parameter]]:
    """Trainable parameters bottom to top: `[embeddings, layer 0, ..., layer N-1, everything else]`.

    Works for any model whose backbone (`model.base_model`) has `embed_tokens` and a `layers` list, as every
    hf_textgen causal-LM and classification model does (and transformers' Llama-like models).

    Raises:
        ValueError: the backbone has no `embed_tokens` / `layers` to group by.
    """
    backbone = getattr(model, "base_model", model)
    if not hasattr(backbone, "embed_tokens") or not isinstance(getattr(backbone, "layers", None), nn.ModuleList):
        raise ValueError(
            f"layer-wise learning rates need a backbone with `embed_tokens` and `layers`; {type(model).__name__} "
            "has none: set --layerwise_lr_decay 1"
        )
    groups = [list(backbone.embed_tokens.parameters())] + [list(layer.parameters()) for layer in backbone.layers]
    seen = {id(parameter) for group in groups for parameter in group}
    # The rest (final norm, head) sits on top; a head tied to the embeddings stays with the embeddings.
    groups.append([parameter for parameter in model.parameters() if id(parameter) not in seen])
    return [[parameter for parameter in group if parameter.requires_grad] for group in groups]


def layerwise_parameter_groups(
    model: nn.Module, learning_rate: float, decay: float, weight_decay: float
) -> list[dict]:
    """AdamW parameter groups: learning rate `learning_rate * decay**k` for the group `k` levels below the top.

    Weight decay applies to matrices only (not to norms and biases), as the Trainer and nanoGPT do. Each group
    records its depth scale in `"lr_scale"`.
    """
    groups = depth_groups(model)
    param_groups = []
    for depth, parameters in enumerate(groups):
        scale = decay ** (len(groups) - 1 - depth)
        for is_matrix in (True, False):
            selected = [parameter for parameter in parameters if (parameter.dim() >= 2) == is_matrix]
            if selected:
                param_groups.append(
                    {
                        "params": selected,
                        "lr": learning_rate * scale,
                        "weight_decay": weight_decay if is_matrix else 0.0,
                        "lr_scale": scale,
                        "is_top": depth == len(groups) - 1,
                    }
                )
    return param_groups


def layerwise_adamw(model: nn.Module, learning_rate: float, decay: float, weight_decay: float, **adamw_kwargs):
    """`torch.optim.AdamW` over `layerwise_parameter_groups`; extra keywords (betas, eps) go to AdamW."""
    return torch.optim.AdamW(
        layerwise_parameter_groups(model, learning_rate, decay, weight_decay), lr=learning_rate, **adamw_kwargs
    )
