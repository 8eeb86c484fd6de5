"""Uncertainty of small-sample numbers: bootstrap intervals, correlations with permutation tests.

NumPy only (no torch), deterministic for a ``seed``. Every interval is a percentile bootstrap 95%
interval unless ``level`` says otherwise.

- :func:`bootstrap_mean`: the mean of per-example values, resampled over examples; given one list
  per seed (replicates), resampled over seeds and then over examples within each drawn seed.
- :func:`bootstrap_paired_delta`: the mean of ``after - before`` over the same examples (paired).
- :func:`bootstrap_stat`: any statistic of a list of units (e.g. recall from resampled examples).
- :func:`pearson`, :func:`spearman`, :func:`correlation`: the coefficient, a two-sided
  permutation p-value and a bootstrap interval over the points.

>>> iv = bootstrap_mean([1.0, 1.0, 0.0, 0.0])
>>> iv.estimate, 0.0 <= iv.low <= 0.5 <= iv.high <= 1.0, iv.n
(0.5, True, 4)
>>> bootstrap_mean([1.0, 1.0, 1.0]).to_dict()
{'estimate': 1.0, 'low': 1.0, 'high': 1.0, 'n': 3, 'level': 0.95, 'over': 'examples'}
>>> spearman([1, 2, 3], [3, 2, 1]), pearson([1, 2], [1, 2]) is None
(-1.0, True)
"""

import math
import random
from dataclasses import dataclass
from typing import Any, Callable, Sequence

N_BOOT = 2000
N_PERM = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with a ``level`` interval ``[low, high]`` from ``n`` units resampled ``over``
    (``"examples"``, ``"seeds x examples"``, ``"points"``...).

    >>> Interval(0.5, 0.25, 0.75, 20).contains(0.0), Interval(0.5, 0.25, 0.75, 20).half_width
    (False, 0.25)
    >>> str(Interval(0.5, 0.25, 0.75, 20))
    '0.50 [0.25, 0.75]'
    """

    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL
    over: str = "examples"

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in ``[low, high]`` (an effect whose interval holds 0 is within noise)."""
        return self.low <= value <= self.high

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to 4 decimals."""
        return {"estimate": round(self.estimate, 4), "low": round(self.low, 4), "high": round(self.high, 4),
                "n": self.n, "level": self.level, "over": self.over}

    def __str__(self) -> str:
        return f"{self.estimate:.2f} [{self.low:.2f}, {self.high:.2f}]"


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted list (numpy's default rule)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def _percentile_interval(estimate: float, draws: list[float], n: int, level: float, over: str) -> Interval:
    if not draws:
        return Interval(estimate, estimate, estimate, n, level, over)
    draws = sorted(draws)
    alpha = (1 - level) / 2
    return Interval(estimate, _quantile(draws, alpha), _quantile(draws, 1 - alpha), n, level, over)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs)


def bootstrap_stat(units: Sequence[Any], stat: Callable[[list[Any]], float | None], *, n_boot: int = N_BOOT,
                   seed: int = 0, level: float = LEVEL, over: str = "examples") -> Interval:
    """``stat(units)`` with a percentile interval over ``n_boot`` resamples of ``units`` (with
    replacement); resamples where ``stat`` is ``None`` (undefined) are skipped.

    >>> bootstrap_stat([2.0, 2.0, 2.0], lambda xs: max(xs)).to_dict()["high"]
    2.0
    """
    if not units:
        raise ValueError("bootstrap_stat needs at least one unit")
    estimate = stat(list(units))
    if estimate is None:
        raise ValueError("bootstrap_stat: the statistic is undefined on the data itself")
    rng = random.Random(seed)
    draws = []
    for _ in range(n_boot):
        value = stat([units[rng.randrange(len(units))] for _ in units])
        if value is not None:
            draws.append(float(value))
    return _percentile_interval(float(estimate), draws, len(units), level, over)


def _replicates(values: Sequence[Any]) -> list[list[float]]:
    """``values`` as a list of per-seed lists (a flat list is one replicate)."""
    if not values:
        raise ValueError("no values to bootstrap")
    if all(isinstance(v, (list, tuple)) for v in values):
        groups = [[float(x) for x in v] for v in values]
        if any(not g for g in groups):
            raise ValueError("a replicate (seed) has no values")
        return groups
    return [[float(x) for x in values]]


def bootstrap_mean(values: Sequence[Any], *, n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> Interval:
    """The mean of ``values`` with a bootstrap interval.

    ``values`` is a list of per-example numbers (resampled over examples), or a list of such lists,
    one per seed (replicate): the estimate is the mean of the seeds' means, and each resample draws
    seeds with replacement and then examples within each drawn seed (a two-level bootstrap, so both
    the seed-to-seed and the test-set variation widen the interval).

    >>> bootstrap_mean([[1.0, 1.0], [0.0, 0.0]]).estimate, bootstrap_mean([[1.0, 1.0], [0.0, 0.0]]).over
    (0.5, 'seeds x examples')
    """
    import numpy as np

    groups = _replicates(values)
    estimate = _mean([_mean(g) for g in groups])
    rng = np.random.default_rng(seed)
    n_groups = len(groups)
    picked = rng.integers(0, n_groups, size=(n_boot, n_groups)) if n_groups > 1 else np.zeros((n_boot, 1), dtype=int)
    means = np.zeros((n_boot, n_groups))
    arrays = [np.asarray(g, dtype=np.float64) for g in groups]
    for j in range(n_groups):  # the j-th drawn seed of every resample
        for g in range(n_groups):
            rows = np.nonzero(picked[:, j] == g)[0]
            if rows.size:
                idx = rng.integers(0, len(arrays[g]), size=(rows.size, len(arrays[g])))
                means[rows, j] = arrays[g][idx].mean(axis=1)
    draws = means.mean(axis=1).tolist()
    over = "seeds x examples" if n_groups > 1 else "examples"
    return _percentile_interval(estimate, draws, sum(len(g) for g in groups), level, over)


def bootstrap_paired_delta(after: Sequence[Any], before: Sequence[Any], *, n_boot: int = N_BOOT, seed: int = 0,
                           level: float = LEVEL) -> Interval:
    """The mean of ``after - before`` over the same examples (flat lists, or one list per seed).

    >>> iv = bootstrap_paired_delta([0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0])
    >>> iv.estimate, iv.high <= 0.0
    (-0.75, True)
    """
    a, b = _replicates(after), _replicates(before)
    if [len(g) for g in a] != [len(g) for g in b]:
        raise ValueError(f"paired delta: after has {[len(g) for g in a]} values per seed but before {[len(g) for g in b]}")
    return bootstrap_mean([[x - y for x, y in zip(ga, gb)] for ga, gb in zip(a, b)], n_boot=n_boot, seed=seed, level=level)


def pearson(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson's r; ``None`` with fewer than 3 points or a constant variable (undefined).

    >>> pearson([1, 2, 3], [2, 4, 6]), pearson([1, 1, 1], [1, 2, 3])
    (1.0, None)
    """
    if len(x) != len(y):
        raise ValueError(f"pearson: {len(x)} x values but {len(y)} y values")
    n = len(x)
    if n < 3:
        return None
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    if sxx <= 1e-24 or syy <= 1e-24:
        return None
    return max(-1.0, min(1.0, sxy / math.sqrt(sxx * syy)))


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank.

    >>> ranks([10, 30, 20, 20])
    [1.0, 4.0, 2.5, 2.5]
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho (Pearson's r of the ranks, ties averaged); ``None`` when undefined."""
    if len(x) != len(y):
        raise ValueError(f"spearman: {len(x)} x values but {len(y)} y values")
    return pearson(ranks(list(x)), ranks(list(y)))


def _shuffle_within(ys: list[float], members: list[list[int]], rng: random.Random) -> None:
    for idx in members:
        vals = [ys[i] for i in idx]
        rng.shuffle(vals)
        for i, v in zip(idx, vals):
            ys[i] = v


def permutation_p(x: Sequence[float], y: Sequence[float], coefficient: Callable, *, n_perm: int = N_PERM,
                  seed: int = 0, groups: Sequence[Any] | None = None) -> float | None:
    """Two-sided permutation p-value of ``coefficient(x, y)``: the share of shuffles of ``y``
    (the observed order counted as one) whose coefficient is at least as far from 0.

    With ``n <= 7`` points every permutation is enumerated (exact); beyond, ``n_perm`` random ones.
    ``groups`` (one label per point, e.g. the seed of each (seed, model) point) makes the test
    stratified: ``y`` is shuffled only within each group (always ``n_perm`` random shuffles), so a
    difference between groups is not taken for an association.

    >>> permutation_p([1, 2, 3], [1, 2, 3], spearman)   # 2 of the 6 orders reach |rho| = 1
    0.3333
    >>> permutation_p([0, 0, 1, 1], [0, 0, 5, 5], pearson, groups=["a", "a", "b", "b"])  # no shuffle within a group changes r
    1.0
    """
    observed = coefficient(x, y)
    if observed is None:
        return None
    target = abs(observed) - 1e-12
    ys = list(y)
    if groups is not None and len(groups) != len(ys):
        raise ValueError(f"permutation_p: {len(groups)} group labels for {len(ys)} points")
    if groups is None and len(ys) <= 7:
        import itertools

        values = [coefficient(x, list(p)) for p in itertools.permutations(ys)]
        hits = sum(1 for v in values if v is not None and abs(v) >= target)
        return round(hits / len(values), 4)
    members = [[i for i, g in enumerate(groups) if g == label] for label in dict.fromkeys(groups)] if groups is not None \
        else [list(range(len(ys)))]
    rng = random.Random(seed)
    hits = 1
    for _ in range(n_perm):
        _shuffle_within(ys, members, rng)
        v = coefficient(x, ys)
        hits += int(v is not None and abs(v) >= target)
    return round(hits / (n_perm + 1), 4)


def correlation(x: Sequence[float], y: Sequence[float], *, method: str = "spearman", n_boot: int = N_BOOT,
                n_perm: int = N_PERM, seed: int = 0, level: float = LEVEL,
                groups: Sequence[Any] | None = None) -> dict[str, Any]:
    """A correlation with its uncertainty: ``{"method", "estimate", "p_value", "interval", "n"}``.

    ``p_value`` is the two-sided permutation p-value (:func:`permutation_p`); ``interval`` a
    bootstrap interval over the points (resampled pairs; resamples where the coefficient is
    undefined are skipped). ``estimate``, ``p_value`` and ``interval`` are ``None`` when the
    coefficient is undefined (fewer than 3 points, or no spread), and ``why`` says which. With
    ``groups`` the permutation test shuffles within groups (:func:`permutation_p`) and the result
    records ``"stratified": True``.

    >>> c = correlation([0.2, 0.4, 0.6, 0.8], [0.1, 0.3, 0.2, 0.9], method="pearson")
    >>> round(c["estimate"], 3), c["p_value"], c["n"], c["interval"]["over"]
    (0.826, 0.25, 4, 'points')
    """
    coefficient = {"spearman": spearman, "pearson": pearson}.get(method)
    if coefficient is None:
        raise ValueError(f"correlation: method {method!r} is not 'spearman' or 'pearson'")
    x, y = [float(v) for v in x], [float(v) for v in y]
    estimate = coefficient(x, y)
    out: dict[str, Any] = {"method": method, "estimate": estimate, "p_value": None, "interval": None, "n": len(x)}
    if estimate is None:
        out["why"] = ("fewer than 3 points" if len(x) < 3 else
                      "no spread: " + ("x" if len(set(x)) == 1 else "y") + " takes a single value")
        return out
    out["estimate"] = round(estimate, 4)
    out["p_value"] = permutation_p(x, y, coefficient, n_perm=n_perm, seed=seed, groups=groups)
    if groups is not None:
        out["stratified"] = True
    pairs = list(zip(x, y))
    out["interval"] = bootstrap_stat(pairs, lambda ps: coefficient([p[0] for p in ps], [p[1] for p in ps]),
                                     n_boot=n_boot, seed=seed, level=level, over="points").to_dict()
    return out
