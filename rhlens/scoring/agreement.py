"""How much two per-head rankings agree: Spearman over all heads, top-k overlap, and bootstrap
intervals over the examples behind them.

Both statistics take ``[n_layers, n_heads]`` scores. The interval
of :func:`bootstrap_agreement` resamples *examples* with replacement (the same draw for both
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

from rhlens.heads import HeadSet


def _ranks(x: Tensor) -> Tensor:
    """Ranks ``0 .. n-1`` of a 1-d tensor, ties given their mean rank."""
    order = x.argsort(stable=True)
    sorted_x = x[order]
    ranks = torch.empty_like(x, dtype=torch.float64)
    i, n = 0, len(x)
    while i < n:
        j = i
        while j + 1 < n and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2
        i = j + 1
    return ranks


def spearman(a: Float[Tensor, "..."], b: Float[Tensor, "..."]) -> float:
    """Spearman's rho of two score tensors of the same shape (Pearson's r of their ranks, ties
    averaged); NaN when either is constant."""
    if a.shape != b.shape:
        raise ValueError(f"spearman: shapes {tuple(a.shape)} and {tuple(b.shape)} differ")
    ra, rb = _ranks(a.flatten().double()), _ranks(b.flatten().double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return float((ra * rb).sum()) / denom if denom > 0 else float("nan")


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
    """95% percentile interval of ``stat(mean_a, mean_b)`` over ``n_boot`` resamples of the examples.

    ``weights_a`` / ``weights_b`` (bool ``[example]``): which examples enter each detector's mean
    (Wu et al.'s ROUGE gate); a draw where a detector has none is skipped. ``(nan, nan)`` when
    every draw is skipped or ``n_boot`` is 0.

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
    gen = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(n_boot):
        draw = torch.randint(0, n, (n,), generator=gen)
        ca, cb = wa[draw], wb[draw]
        if not ca.any() or not cb.any():
            continue
        v = stat(a[draw][ca].double().mean(dim=0), b[draw][cb].double().mean(dim=0))
        if not math.isnan(v):
            values.append(v)
    if not values:
        return float("nan"), float("nan")
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.quantile(0.025)), float(t.quantile(0.975))
