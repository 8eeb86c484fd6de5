"""Which heads an intervention touches: heads grouped by layer (checked against the model), every
head of a model, and the heads random controls must avoid (the retrieval threshold)."""

from typing import Any, Iterable

from rhlens.adapter import Model, architecture
from rhlens.heads import RETRIEVAL_THRESHOLD, Head, HeadSet, as_head_set


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


HeadsLike = Iterable["Head | str | tuple[int, int]"]


def _score_grids(scores: Any) -> list[Any]:
    """``scores`` as a list of ``[n_layers, n_heads]`` grids: one grid (a tensor or anything with
    ``.scores`` such as ``HeadScores``), or a list or tuple of them (``None`` entries skipped)."""
    many = scores if isinstance(scores, (list, tuple)) else [scores]
    return [getattr(s, "scores", s) for s in many if s is not None]


def control_exclusion(
    chosen: "HeadsLike" = (),
    *,
    exclude: "HeadsLike | None" = None,
    scores: Any = None,
    threshold: float = RETRIEVAL_THRESHOLD,
    n_total: int | None = None,
    what: str,
) -> HeadSet:
    """The heads a random control for ``chosen`` (as many random heads) must avoid; the one rule
    of every knockout, patching table and tool that draws controls.

    - ``exclude`` given: ``exclude`` and ``chosen``.
    - else: ``chosen`` and every head scoring above ``threshold`` in ``scores`` (one
      ``[n_layers, n_heads]`` grid or ``HeadScores``, or a list of them: e.g. the source's and the
      target's). Wu et al. keep their top 100 retrieval heads of 1,024 out of the controls: a
      control that knocks out retrieval heads is no control. When fewer than ``2 * len(chosen)``
      of the ``n_total`` heads would remain (a small model whose retrieval heads are most of its
      heads), only ``chosen`` is avoided, so draws can still differ.
    - neither: ``ValueError``, so the exclusion is always explicit (``exclude=()`` excludes only
      ``chosen``).

    >>> import torch
    >>> grid = torch.zeros(2, 4); grid[0, :3] = 0.5
    >>> control_exclusion(["L1H0"], scores=grid, n_total=8, what="demo")
    HeadSet([L0H0, L0H1, L0H2, L1H0])
    >>> control_exclusion(["L1H0", "L1H1"], scores=grid, n_total=8, what="demo")  # 2 left, 4 needed
    HeadSet([L1H0, L1H1])
    """
    picked = as_head_set(chosen)
    if exclude is not None:
        return as_head_set(exclude) | picked
    grids = _score_grids(scores)
    if not grids:
        raise ValueError(
            f"{what} draws random control heads and needs to know which heads to keep out: pass scores= (the "
            f"reference model's retrieval scores; heads above {threshold} are excluded) or exclude= a HeadSet "
            "(exclude=() excludes none)."
        )
    wide = picked
    for grid in grids:
        wide = wide | HeadSet.above(grid, threshold)
    if n_total is not None and n_total - len(wide) < 2 * len(picked):
        return picked
    return wide


def all_heads(model: Model) -> HeadSet:
    """Every query head of ``model``."""
    arch = architecture(model)
    return HeadSet(Head(l, h) for l in range(arch.n_layers) for h in range(arch.n_heads))
