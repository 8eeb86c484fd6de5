"""LoRA on the attention weights through ``torch.nn.utils.parametrize``.

Each attention weight is a linear map, ``d_model -> head * d_head`` for Q/K/V and ``head * d_head
-> d_model`` for O, stored in a layout the adapter names (:class:`rhlens.adapter.weights.WeightSlot`):
a HookedTransformer's per-head ``W_Q``/``W_K``/``W_V`` ``[head, d_model, d_head]`` (grouped-query
models: ``_W_K``/``_W_V`` ``[kv_head, d_model, d_head]``) and ``W_O`` ``[head, d_head, d_model]``; a
TransformerBridge's Hugging Face ``q_proj``/``k_proj``/``v_proj``/``o_proj`` weights ``[out, in]``
(GPT-2's ``c_proj``: ``[in, out]``). The adapter adds ``alpha / rank * A @ B`` to that map, with
``A`` ``[in, rank]`` (Kaiming-uniform) and ``B`` ``[rank, out]`` (zeros, so training starts from the
base model): the same draws on either model class. While applied, the adapted weight is what the
forward, hooks and the fused path see; :func:`merge_lora` folds the update into a plain
``nn.Parameter``, leaving an ordinary model.

>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_key_value_heads=2)
>>> apply_lora(model, rank=4, alpha=8)  # adapters added (4 per layer)
8
>>> sorted(lora_state_dict(model))[:3]
['blocks.0.attn.W_O.base', 'blocks.0.attn.W_O.lora_A', 'blocks.0.attn.W_O.lora_B']
>>> merge_lora(model); has_lora(model)
False
"""

import math
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from rhlens.adapter.core import Model
from rhlens.adapter.native import model_state
from rhlens.adapter.weights import WeightSlot, attention_weight_slots, flat_to_weight


class LoRA(nn.Module):
    """``W + alpha / rank * (A @ B)`` for one attention weight, ``A @ B`` in the weight's layout.

    Args:
        shape: the weight's shape.
        layout: how the weight stores its ``in -> out`` map (:func:`rhlens.adapter.weights.flat_to_weight`).
        dims: ``(in_dim, out_dim)`` of that map.
    """

    def __init__(self, shape: Sequence[int], layout: str, dims: tuple[int, int], rank: int, alpha: float, *,
                 dtype: Any = None, device: Any = None):
        super().__init__()
        self.shape, self.layout = tuple(shape), layout
        in_dim, out_dim = dims
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(in_dim, rank, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(rank, out_dim, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.lora_A.T, a=math.sqrt(5))

    def delta(self) -> Tensor:
        """The update in the weight's own shape and layout."""
        return flat_to_weight((self.lora_A @ self.lora_B) * self.scale, self.layout, self.shape)

    def forward(self, weight: Tensor) -> Tensor:
        return weight + self.delta().to(weight.dtype)


def _lora_of(slot: WeightSlot) -> "LoRA | None":
    if not parametrize.is_parametrized(slot.module, slot.attr):
        return None
    return next((m for m in slot.module.parametrizations[slot.attr] if isinstance(m, LoRA)), None)


def apply_lora(model: Model, *, rank: int, alpha: float, targets: Sequence[str] = ("q", "k", "v", "o")) -> int:
    """Freeze every parameter of ``model`` and add trainable LoRA adapters; returns their count.

    Initialisation draws from torch's global RNG: seed it first for reproducible adapters.
    """
    if has_lora(model):
        raise ValueError("the model already has LoRA adapters; merge_lora(model) first")
    for p in model.parameters():
        p.requires_grad_(False)
    count = 0
    for slot in list(attention_weight_slots(model, targets)):
        weight = getattr(slot.module, slot.attr)
        lora = LoRA(slot.shape, slot.layout, slot.dims, rank, alpha, dtype=weight.dtype, device=weight.device)
        parametrize.register_parametrization(slot.module, slot.attr, lora)
        count += 1
    return count


def has_lora(model: Model) -> bool:
    """Whether any attention weight of ``model`` is currently LoRA-parametrized."""
    return any(_lora_of(slot) is not None for slot in attention_weight_slots(model))


def lora_parameters(model: Model) -> list[nn.Parameter]:
    """The adapter tensors ``A``, ``B`` in a fixed order (layer, target, A before B)."""
    return [p for _, p in _lora_items(model)]


def _lora_items(model: Model) -> list[tuple[str, nn.Parameter]]:
    items = []
    for slot in attention_weight_slots(model):
        lora = _lora_of(slot)
        if lora is not None:
            items += [(f"{slot.name}.lora_A", lora.lora_A), (f"{slot.name}.lora_B", lora.lora_B)]
    return items


def lora_state_dict(model: Model) -> dict[str, Tensor]:
    """Adapter tensors and the unadapted base weights they sit on, by stable names.

    Keys: ``blocks.{L}.attn.{weight}.lora_A`` / ``.lora_B`` / ``.base`` (``weight`` the
    TransformerLens name, ``W_Q`` ...; ``.base`` in the layout the model stores it).
    """
    out = {name: p.detach() for name, p in _lora_items(model)}
    for slot in attention_weight_slots(model):
        if _lora_of(slot) is not None:
            out[f"{slot.name}.base"] = slot.module.parametrizations[slot.attr].original.detach()
    return out


def load_lora_state_dict(model: Model, state: dict[str, Tensor]) -> None:
    """Copy :func:`lora_state_dict` tensors back into a model with the same adapters applied.

    Raises ``ValueError`` naming the keys or shapes that do not match (the model is left untouched).
    """
    own = lora_state_dict(model)
    if set(state) != set(own):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"LoRA state does not match the model's adapters (missing {missing[:4]}, unexpected {extra[:4]})")
    shapes = [f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}" for k, v in state.items() if v.shape != own[k].shape]
    if shapes:
        raise ValueError(f"LoRA state does not match the model's adapters (shapes: {'; '.join(shapes[:3])})")
    with torch.no_grad():
        for slot in attention_weight_slots(model):
            lora = _lora_of(slot)
            if lora is not None:
                slot.module.parametrizations[slot.attr].original.copy_(state[f"{slot.name}.base"])
                lora.lora_A.copy_(state[f"{slot.name}.lora_A"])
                lora.lora_B.copy_(state[f"{slot.name}.lora_B"])


def merged_state_dict(model: Model) -> dict[str, Tensor]:
    """The TransformerLens-keyed weights (:func:`rhlens.adapter.native.model_state`) of ``model``
    with the adapters folded in: what :func:`merge_lora` would leave.

    The live model is not changed (use this for checkpoints written mid-training).
    """
    return model_state(model)


def merge_lora(model: Model) -> None:
    """Fold every adapter into its weight, leaving plain ``nn.Parameter`` weights (in place)."""
    for slot in attention_weight_slots(model):
        if _lora_of(slot) is not None:
            parametrize.remove_parametrizations(slot.module, slot.attr, leave_parametrized=True)
