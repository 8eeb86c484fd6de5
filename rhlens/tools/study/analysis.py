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

from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.heads import HeadSet
from rhlens.stats import bootstrap_stat, pearson, spearman  # noqa: F401  (pearson, spearman: the study's names)


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


def recall_interval(reference: Any, other: Any, *, threshold: float, top_k: int, n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Any] | None:
    """Recall of ``reference``'s retrieval heads among ``other``'s, with a bootstrap 95% interval
    over the test examples both were scored on (each resample recomputes both models' mean scores
    and their retrieval heads). ``None`` when the reference has no retrieval head.

    ``reference`` and ``other`` are :class:`rhlens.HeadScores` of the same examples.

    >>> import torch
    >>> from rhlens.scoring import HeadScores
    >>> pe = torch.zeros(4, 1, 2); pe[:, 0, 0] = 0.5
    >>> both = HeadScores(per_example=pe, counted=torch.ones(4, dtype=torch.bool))
    >>> recall_interval(both, both, threshold=0.1, top_k=2)
    {'estimate': 1.0, 'low': 1.0, 'high': 1.0, 'n': 4, 'level': 0.95, 'over': 'examples'}
    """
    import torch

    if reference.per_example.shape != other.per_example.shape:
        raise ValueError(f"recall_interval: the models were scored on different examples "
                         f"({tuple(reference.per_example.shape)} vs {tuple(other.per_example.shape)})")

    def heads(per_example: Tensor, counted: Tensor, idx: list[int]) -> HeadSet:
        rows = torch.tensor(idx)
        keep = counted[rows]
        mean = per_example[rows][keep].double().mean(0) if keep.any() else torch.zeros(per_example.shape[1:])
        return retrieval_heads(mean.float(), threshold=threshold, top_k=top_k)

    def recall(idx: list[int]) -> float | None:
        ref = heads(reference.per_example, reference.counted, idx)
        return heads(other.per_example, other.counted, idx).recall(ref) if ref else None

    units = list(range(reference.per_example.shape[0]))
    if recall(units) is None:
        return None
    return bootstrap_stat(units, recall, n_boot=n_boot, seed=seed).to_dict()
