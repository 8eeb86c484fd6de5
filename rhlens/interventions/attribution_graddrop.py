"""AtP*'s gradient dropout (GradDrop) for :func:`rhlens.interventions.attribution_sweep`.

Attribution patching multiplies a head's activation difference by the *total* gradient of the
metric, the sum over every path from the head to the output. When a head's direct path and an
indirect one (through a later block) cancel, that sum is near zero although patching the head
changes a lot (a later block would not compensate exactly, or the paths are not linear): a false
negative. Kramár et al. 2024 (AtP*, section "gradient dropout") catch it by repeating the backward
once per layer ``d`` with the gradient through block ``d``'s contribution to the residual stream
set to zero (here: its attention output and its MLP output), which breaks every path through that
block, and scoring each node by

    graddrop(n) = 1 / (n_layers - 1) * sum over d of |estimate of n with block d dropped|

(each estimate a mean over examples). For ``d`` before the head's layer the estimate is the plain
one; for ``d`` the head's own layer it is 0 (the head's output enters the residual stream through
that block), hence the ``n_layers - 1``. The score is a magnitude for *ranking* heads to verify
with the exact sweep (``patch_sweep(..., heads=...)``), not a signed effect.

Cost: ``n_layers - 1`` extra backwards over the retained graph of the one target forward (block
0's dropout changes no gradient below it and needs none), each about as dear as the plain backward
(about one forward-equivalent): about ``2 + n_layers`` forward-equivalents in all, against about
three without. It helps when heads act through later heads or MLPs that undo part of their
effect (backup or negative heads); when the plain estimate already ranks like the exact sweep
(the bench's Spearman), it adds cost and no information.

The QK fix of AtP* does not apply: the patched node, ``hook_z``, is the head's output after its
own softmax, so the patch never moves that head's attention pattern.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks import Example
>>> from rhlens.interventions import attribution_sweep
>>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
>>> tok = word_level_tokenizer([ex.prompt + ex.completion])
>>> src, tgt = tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2)
>>> est = attribution_sweep(src, tgt, [ex], gradient_dropout=True, progress=False)
>>> est.graddrop.shape, bool((est.graddrop >= 0).all())
(torch.Size([2, 4]), True)
>>> bool(torch.allclose(est.graddrop[1], est.effect[1].abs(), atol=1e-5))  # last layer: only earlier blocks dropped
True
"""

from typing import Any, Callable

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.adapter import hook_name


class _Drop(torch.autograd.Function):
    """Identity forward; the backward passes no gradient while its gate drops its layer."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, gate: "DropGate", layer: int) -> Tensor:
        ctx.gate, ctx.layer = gate, layer
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None, None]:
        return (None if ctx.gate.dropping == ctx.layer else grad), None, None


class DropGate:
    """Forward hooks that let one backward at a time drop a block's residual contributions.

    Args:
        n_layers: the target's layers (at least 2: with one there is no other path to drop).
    """

    def __init__(self, n_layers: int) -> None:
        if n_layers < 2:
            raise ValueError(f"gradient_dropout needs a model with at least 2 layers (this one has {n_layers})")
        self.n_layers = n_layers
        self.dropping: int | None = None

    def hooks(self, layers: list[int]) -> list[tuple[str, Callable]]:
        """``(hook name, hook)`` pairs gating the attention and MLP outputs of blocks 1 onward."""

        def gate(layer: int):
            def hook(x: Tensor, hook: Any) -> Tensor:
                return _Drop.apply(x, self, layer) if x.requires_grad else x

            return hook

        return [(hook_name(kind, l), gate(l)) for l in layers[1:] for kind in ("attn_out", "mlp_out")]

    def backwards(self, grad: Callable[[list[int], bool], dict[int, Tensor]], layers: list[int]) -> dict[int, dict[int, Tensor]]:
        """``{d: {l: gradient of the metric at hook_z of layer l with block d dropped}}`` for ``d``
        from 1 and every ``l < d`` (the others need no backward); ``grad(layers, retain_graph)``
        runs one backward. The graph is freed after the last."""
        out: dict[int, dict[int, Tensor]] = {}
        try:
            for d in layers[1:]:
                self.dropping = d
                out[d] = grad([l for l in layers if l < d], d != layers[-1])
        finally:
            self.dropping = None
        return out


def dropped_estimates(
    plain: Float[Tensor, "layer head batch"],
    drops: dict[int, dict[int, Tensor]],
    estimate: Callable[[dict[int, Tensor]], dict[int, Float[Tensor, "head batch"]]],
) -> Float[Tensor, "drop_layer layer head batch"]:
    """Every head's estimate with each block dropped: the plain one for blocks before the head's
    layer, 0 for its own, ``estimate(drops[d])`` (gradients to estimates) for blocks after it."""
    n_layers = plain.shape[0]
    out = plain[None].repeat(n_layers, 1, 1, 1)
    for d in range(n_layers):
        out[d, d] = 0
        for l, est in estimate(drops.get(d, {})).items():
            out[d, l] = est
    return out


def combine_dropped(dropped: Float[Tensor, "drop_layer layer head"]) -> Float[Tensor, "layer head"]:
    """AtP*'s GradDrop score: ``sum over d of |dropped[d]| / (n_layers - 1)`` (the ``d`` of the
    head's own layer is 0).

    >>> combine_dropped(torch.tensor([[[0.0], [2.0]], [[-4.0], [0.0]]]))  # 2 layers x 1 head
    tensor([[4.],
            [2.]])
    """
    return dropped.abs().sum(dim=0) / max(dropped.shape[0] - 1, 1)
