"""LoRA on the attention weights through ``torch.nn.utils.parametrize``.

TransformerLens stores attention weights per head: ``W_Q``/``W_K``/``W_V`` ``[head, d_model,
d_head]`` (grouped-query models keep ``_W_K``/``_W_V`` ``[kv_head, d_model, d_head]``) and ``W_O``
``[head, d_head, d_model]``. Each is the linear map it implements, flattened: ``d_model -> head *
d_head`` for Q/K/V, ``head * d_head -> d_model`` for O. The adapter adds ``alpha / rank * A @ B``
to that map, with ``A`` ``[in, rank]`` (Kaiming-uniform) and ``B`` ``[rank, out]`` (zeros, so
training starts from the base model). While applied, reading ``attn.W_Q`` returns the adapted
weight, so hooks and the fused path see it; :func:`merge_lora` folds the update into a plain
``nn.Parameter``, leaving an ordinary HookedTransformer.

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
from rhlens.adapter.weights import ATTENTION_WEIGHT_LAYOUTS as _TARGETS
from rhlens.adapter.weights import attention_modules as _attention_modules
from rhlens.adapter.weights import attention_weight_name as _target_attr


class LoRA(nn.Module):
    """``W + alpha / rank * reshape(A @ B)`` for one per-head attention weight.

    Args:
        shape: the weight's shape ``(head, a, b)``.
        layout: ``"in"`` when the weight maps ``a`` (d_model) to ``(head, b)`` (Q/K/V);
            ``"out"`` when it maps ``(head, a)`` to ``b`` (d_model) (O).
    """

    def __init__(self, shape: Sequence[int], layout: str, rank: int, alpha: float, *, dtype: Any = None, device: Any = None):
        super().__init__()
        heads, a, b = shape
        self.shape, self.layout = tuple(shape), layout
        in_dim, out_dim = (a, heads * b) if layout == "in" else (heads * a, b)
        self.scale = alpha / rank
        self.lora_A = nn.Parameter(torch.empty(in_dim, rank, dtype=dtype, device=device))
        self.lora_B = nn.Parameter(torch.zeros(rank, out_dim, dtype=dtype, device=device))
        nn.init.kaiming_uniform_(self.lora_A.T, a=math.sqrt(5))

    def delta(self) -> Tensor:
        """The update in the weight's own ``(head, a, b)`` shape."""
        heads, a, b = self.shape
        flat = (self.lora_A @ self.lora_B) * self.scale  # [in, out]
        if self.layout == "in":
            return flat.reshape(a, heads, b).permute(1, 0, 2)
        return flat.reshape(heads, a, b)

    def forward(self, weight: Tensor) -> Tensor:
        return weight + self.delta().to(weight.dtype)


def apply_lora(model: Model, *, rank: int, alpha: float, targets: Sequence[str] = ("q", "k", "v", "o")) -> int:
    """Freeze every parameter of ``model`` and add trainable LoRA adapters; returns their count.

    Initialisation draws from torch's global RNG: seed it first for reproducible adapters.
    """
    if has_lora(model):
        raise ValueError("the model already has LoRA adapters; merge_lora(model) first")
    for p in model.parameters():
        p.requires_grad_(False)
    count = 0
    for _, attn in _attention_modules(model):
        for letter in targets:
            name = _target_attr(attn, letter)
            weight = getattr(attn, name)
            lora = LoRA(weight.shape, _TARGETS[letter][1], rank, alpha, dtype=weight.dtype, device=weight.device)
            parametrize.register_parametrization(attn, name, lora)
            count += 1
    return count


def has_lora(model: Model) -> bool:
    """Whether any attention weight of ``model`` is currently LoRA-parametrized."""
    return any(parametrize.is_parametrized(attn) for _, attn in _attention_modules(model))


def lora_parameters(model: Model) -> list[nn.Parameter]:
    """The adapter tensors ``A``, ``B`` in a fixed order (layer, target, A before B)."""
    return [p for _, p in _lora_items(model)]


def _lora_items(model: Model) -> list[tuple[str, nn.Parameter]]:
    items = []
    for prefix, attn in _attention_modules(model):
        if not parametrize.is_parametrized(attn):
            continue
        for name, plist in attn.parametrizations.items():
            for mod in plist:
                if isinstance(mod, LoRA):
                    items.append((f"{prefix}.{name}.lora_A", mod.lora_A))
                    items.append((f"{prefix}.{name}.lora_B", mod.lora_B))
    return items


def lora_state_dict(model: Model) -> dict[str, Tensor]:
    """Adapter tensors and the unadapted base weights they sit on, by stable names.

    Keys: ``blocks.{L}.attn.{weight}.lora_A`` / ``.lora_B`` / ``.base``.
    """
    out = {name: p.detach() for name, p in _lora_items(model)}
    for prefix, attn in _attention_modules(model):
        if parametrize.is_parametrized(attn):
            for name, plist in attn.parametrizations.items():
                out[f"{prefix}.{name}.base"] = plist.original.detach()
    return out


def load_lora_state_dict(model: Model, state: dict[str, Tensor]) -> None:
    """Copy :func:`lora_state_dict` tensors back into a model with the same adapters applied."""
    expected = set(lora_state_dict(model))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"LoRA state does not match the model's adapters (missing {missing[:4]}, unexpected {extra[:4]})")
    with torch.no_grad():
        for prefix, attn in _attention_modules(model):
            if not parametrize.is_parametrized(attn):
                continue
            for name, plist in attn.parametrizations.items():
                plist.original.copy_(state[f"{prefix}.{name}.base"])
                for mod in plist:
                    if isinstance(mod, LoRA):
                        mod.lora_A.copy_(state[f"{prefix}.{name}.lora_A"])
                        mod.lora_B.copy_(state[f"{prefix}.{name}.lora_B"])


def merged_state_dict(model: Model) -> dict[str, Tensor]:
    """The state dict an ordinary HookedTransformer with the adapters folded in would have.

    The live model is not changed (use this for checkpoints written mid-training).
    """
    state = model.state_dict()
    if not has_lora(model):
        return state
    out = {}
    for key, value in state.items():
        if ".parametrizations." not in key:
            out[key] = value
    with torch.no_grad():
        for prefix, attn in _attention_modules(model):
            if parametrize.is_parametrized(attn):
                for name in attn.parametrizations:
                    out[f"{prefix}.{name}"] = getattr(attn, name).detach().clone()
    return out


def merge_lora(model: Model) -> None:
    """Fold every adapter into its weight, leaving plain ``nn.Parameter`` weights (in place)."""
    for _, attn in _attention_modules(model):
        if parametrize.is_parametrized(attn):
            for name in list(attn.parametrizations):
                parametrize.remove_parametrizations(attn, name, leave_parametrized=True)
