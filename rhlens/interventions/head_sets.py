"""Which heads an intervention touches: heads grouped by layer (checked against the model), every
head of a model, and the heads random controls must avoid (the retrieval threshold)."""

from typing import Any, Iterable

from rhlens.adapter import Model, architecture
from rhlens.heads import Head, HeadSet, as_head_set

RETRIEVAL_THRESHOLD = 0.1
"""Wu et al.'s retrieval-head threshold: a head scoring above it is a retrieval head."""


def heads_by_layer(model: Model, heads: Iterable["Head | str | tuple[int, int]"], *, what: str = "heads") -> dict[int, list[int]]:
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


def control_exclusion(
    exclude: "Iterable[Head | str | tuple[int, int]] | None",
    scores: Any,
    threshold: float,
    *,
    what: str,
) -> HeadSet:
    """The heads a random control set must avoid: ``exclude`` when given, else every head scoring
    above ``threshold`` in ``scores`` (the reference model's retrieval scores: a ``[n_layers,
    n_heads]`` tensor, or anything with ``.scores`` such as ``HeadScores``).

    Wu et al. exclude their top 100 retrieval heads of 1,024 from the random controls: a control
    that knocks out retrieval heads is no control. With neither argument this is an error, so the
    exclusion is always explicit (``exclude=()`` excludes nothing).
    """
    if exclude is not None:
        return as_head_set(exclude)
    if scores is None:
        raise ValueError(
            f"{what} draws random control heads and needs to know which heads to keep out: pass scores= (the "
            f"reference model's retrieval scores; heads above {threshold} are excluded) or exclude= a HeadSet "
            "(exclude=() excludes none)."
        )
    return HeadSet.above(getattr(scores, "scores", scores), threshold)


def all_heads(model: Model) -> HeadSet:
    """Every query head of ``model``."""
    arch = architecture(model)
    return HeadSet(Head(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads))
