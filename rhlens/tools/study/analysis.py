"""The numbers of the compare stage: retrieval-head sets, recall, cosine similarity, correlations.

>>> import torch
>>> scores = torch.tensor([[0.5, 0.05], [0.2, 0.3]])
>>> retrieval_heads(scores, threshold=0.1, top_k=2).labels()
['L0H0', 'L1H1']
>>> round(cosine(scores, scores), 6), pearson([1, 2, 3], [2, 4, 7]) > 0.9, spearman([1, 2, 3], [3, 2, 1])
(1.0, True, -1.0)
>>> spearman([1, 2], [1, 2]) is None   # fewer than 3 points: undefined
True
"""

import math
from typing import Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.heads import HeadSet


def retrieval_heads(scores: Float[Tensor, "layer head"], *, threshold: float, top_k: int) -> HeadSet:
    """The at most ``top_k`` highest-scoring heads among those scoring above ``threshold``."""
    above = HeadSet.above(scores, threshold)
    if len(above) <= top_k:
        return above
    return HeadSet.top_k(scores, top_k) & above


def cosine(a: Float[Tensor, "layer head"], b: Float[Tensor, "layer head"]) -> float | None:
    """Cosine similarity of two score maps flattened (``None`` when either is all zeros)."""
    x, y = torch.as_tensor(a, dtype=torch.float64).flatten(), torch.as_tensor(b, dtype=torch.float64).flatten()
    nx, ny = float(x.norm()), float(y.norm())
    if nx == 0.0 or ny == 0.0:
        return None
    return float(x @ y) / (nx * ny)


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; ``None`` with fewer than 3 points or a constant variable (undefined)."""
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} x values but {len(y)} y values")
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx == 0 or syy == 0:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson's r of the ranks, ties averaged); ``None`` when undefined."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} x values but {len(y)} y values")
    return pearson(_ranks(list(x)), _ranks(list(y)))
