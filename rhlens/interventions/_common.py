"""Helpers shared by the interventions: head grouping, masked-score detection."""

from typing import Any, Iterable

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens.adapter import architecture
from rhlens.heads import Head, HeadSet, as_head_set


def heads_by_layer(model: Any, heads: Iterable["Head | str | tuple[int, int]"], *, what: str = "heads") -> dict[int, list[int]]:
    """``{layer: [query head indices]}`` for ``heads``, checked against the model's shape.

    Raises ``ValueError`` naming every head outside the model.
    """
    arch = architecture(model)
    hs = as_head_set(heads)
    bad = [str(h) for h in hs if h.layer >= arch.n_layers or h.head >= arch.n_heads]
    if bad:
        raise ValueError(
            f"{what} {', '.join(bad)} outside a model with {arch.n_layers} layers x {arch.n_heads} query heads "
            f"(layers L0..L{arch.n_layers - 1}, heads H0..H{arch.n_heads - 1})"
        )
    out: dict[int, list[int]] = {}
    for h in hs:
        out.setdefault(h.layer, []).append(h.head)
    return out


def masked_scores(scores: Float[Tensor, "... k_pos"]) -> Bool[Tensor, "... k_pos"]:
    """True where pre-softmax attention scores are masked out.

    TransformerLens masks with ``-inf``; Hugging Face eager attention (TransformerBridge) adds the
    dtype's most negative finite value. Both count as masked (anything at or below half the dtype's
    minimum, or NaN).
    """
    floor = torch.finfo(scores.dtype).min / 2
    return (scores <= floor) | torch.isnan(scores)


def blocked_value(scores: Tensor) -> float:
    """The score written to block an edge: the dtype's most negative finite value.

    ``exp`` of it underflows to exactly 0 next to any finite score, so the softmax renormalises
    over the remaining keys exactly as ``-inf`` would, but a row can never become all ``-inf``
    (which gives NaN in Hugging Face's eager softmax and poisons later positions through ``0 * NaN``).
    """
    return torch.finfo(scores.dtype).min


def all_heads(model: Any) -> HeadSet:
    arch = architecture(model)
    return HeadSet(Head(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads))
