"""How much two per-head rankings agree: Spearman over all heads, top-k overlap, and bootstrap
intervals over the examples behind them.

Both statistics take ``[n_layers, n_heads]`` scores; the interval of :func:`bootstrap_interval`
(on :mod:`rhlens.stats`) resamples *examples* with replacement (the same draw for both
detectors), recomputes each detector's mean per-head score over the draw, and reports the 2.5 and
97.5 percentiles of the statistic over ``n_boot`` draws.

>>> a = torch.tensor([[0.9, 0.1], [0.5, 0.0]])
>>> spearman(a, a), spearman(a, -a), top_k_overlap(a, torch.tensor([[0.8, 0.7], [0.0, 0.1]]), 2)
(1.0, -1.0, 0.5)
"""

import math
from typing import Callable

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens import stats
from rhlens.heads import HeadSet


RANK_DECIMALS = 6
"""Scores are rounded to this many decimals before they are ranked: heads whose scores differ by
less are tied (such differences are float noise between execution paths, e.g. TransformerLens 3's
HookedTransformer and 4's bridge on the same weights, not an order)."""


def spearman(a: Float[Tensor, "..."], b: Float[Tensor, "..."]) -> float:
    """Spearman's rho of two score tensors of the same shape, over every entry
    (:func:`rhlens.stats.spearman`: ties averaged, after rounding to :data:`RANK_DECIMALS`); NaN when
    either is constant.

    >>> x = torch.tensor([0.5, 0.2, 0.0, 0.0])
    >>> spearman(x, torch.tensor([0.5, 0.2, 1e-9, -1e-9])) == spearman(x, x)   # noise does not order the zeros
    True
    """
    if a.shape != b.shape:
        raise ValueError(f"spearman: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    ranked_a, ranked_b = (torch.round(t.flatten().double(), decimals=RANK_DECIMALS).tolist() for t in (a, b))
    rho = stats.spearman(ranked_a, ranked_b)
    return float("nan") if rho is None else float(rho)


def top_k_overlap(a: Float[Tensor, "layer head"], b: Float[Tensor, "layer head"], k: int) -> float:
    """Fraction of ``a``'s top ``k`` heads that are in ``b``'s top ``k`` (:meth:`HeadSet.top_k`)."""
    if k < 1:
        raise ValueError(f"top_k_overlap: k must be at least 1, got {k}")
    return len(HeadSet.top_k(a, k) & HeadSet.top_k(b, k)) / k


def bootstrap_interval(
    a: Float[Tensor, "example layer head"],
    b: Float[Tensor, "example layer head"],
    stat: Callable[[Tensor, Tensor], float],
    *,
    n_boot: int = 200,
    seed: int = 0,
    weights_a: Tensor | None = None,
    weights_b: Tensor | None = None,
) -> tuple[float, float]:
    """95% percentile interval of ``stat(mean_a, mean_b)`` over ``n_boot`` resamples of the
    examples (:func:`rhlens.stats.bootstrap_stat`, the same draw for both detectors).

    ``weights_a`` / ``weights_b`` (bool ``[example]``): which examples enter each detector's mean
    (Wu et al.'s ROUGE gate); a draw where a detector has none is skipped. ``(nan, nan)`` when the
    statistic is undefined on the examples themselves, every draw is skipped, or ``n_boot`` is 0.

    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.rand(20, 2, 3, generator=g)
    >>> lo, hi = bootstrap_interval(x, x + 0.01 * torch.rand(20, 2, 3, generator=g), spearman, n_boot=50)
    >>> lo > 0.5 and hi <= 1.0
    True
    """
    n = a.shape[0]
    if b.shape[0] != n:
        raise ValueError(f"bootstrap_interval: {n} examples against {b.shape[0]}")
    wa = torch.ones(n, dtype=torch.bool) if weights_a is None else weights_a.bool()
    wb = torch.ones(n, dtype=torch.bool) if weights_b is None else weights_b.bool()

    def on(draw: list[int]) -> float | None:
        idx = torch.tensor(draw)
        ca, cb = idx[wa[idx]], idx[wb[idx]]
        if not len(ca) or not len(cb):
            return None
        v = stat(a[ca].double().mean(dim=0), b[cb].double().mean(dim=0))
        return None if math.isnan(v) else v

    if n_boot < 1 or on(list(range(n))) is None:
        return float("nan"), float("nan")
    iv = stats.bootstrap_stat(list(range(n)), on, n_boot=n_boot, seed=seed)
    return iv.low, iv.high
