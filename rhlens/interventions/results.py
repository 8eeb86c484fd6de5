"""Result objects of knockout and patching, each with a plot-ready tensor (:class:`EvalResult`,
the result of :func:`rhlens.evaluate`, lives in :mod:`rhlens.evaluation`).

Scores are floats, per-example values ``[n_examples]`` float tensors on the CPU. ``to_dataframe()``
imports pandas lazily (``pip install pandas``).

>>> import torch
>>> base = EvalResult(per_example=torch.tensor([1.0, 0.0]), predictions=["a", "b"])
>>> knocked = EvalResult(per_example=torch.tensor([0.0, 0.0]), predictions=["c", "b"])
>>> eff = KnockoutEffect(baseline=base, knocked=knocked, heads=HeadSet(["L0H1"]), mode="zero")
>>> eff.baseline.score, eff.knocked.score, eff.delta
(0.5, 0.0, -0.5)
>>> eff.per_example_delta.tolist()
[-1.0, 0.0]
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.evaluation import EvalResult
from rhlens.evaluation import require_pandas as _pandas
from rhlens.heads import Head, HeadSet


@dataclass
class KnockoutEffect:
    """A metric with and without a head knockout.

    Attributes:
        baseline: the intact model's :class:`EvalResult`.
        knocked: the result with ``heads`` knocked out.
        heads: the knocked-out heads.
        mode: ``"zero"``, ``"mean"`` or ``"uniform"``.
        scope: ``"decode"`` (decoding steps only, as Wu et al.) or ``"all"``.
        controls: the results with each random control set knocked out instead (may be empty).
        control_heads: the random control sets, aligned with ``controls``.
    """

    baseline: EvalResult
    knocked: EvalResult
    heads: HeadSet
    mode: str
    scope: str = "decode"
    controls: list[EvalResult] = field(default_factory=list)
    control_heads: list[HeadSet] = field(default_factory=list)

    def plot(self, name: str = "knockout", **kwargs: Any) -> Any:
        """:func:`rhlens.plot.knockout_bars` of this effect and its random controls (a plotly
        ``Figure``; not shown)."""
        from rhlens.plot import knockout_bars  # rhlens.plot sits above the analyzers

        return knockout_bars({name: self}, **kwargs)

    @property
    def control_delta(self) -> float:
        """Mean over the random controls of ``control.score - baseline.score`` (NaN when none)."""
        if not self.controls:
            return float("nan")
        return sum(c.score for c in self.controls) / len(self.controls) - self.baseline.score

    @property
    def delta(self) -> float:
        """``knocked.score - baseline.score`` (negative: the knockout hurts)."""
        return self.knocked.score - self.baseline.score

    @property
    def per_example_delta(self) -> Float[Tensor, "example"]:
        return self.knocked.per_example - self.baseline.per_example

    def to_dataframe(self) -> Any:
        """One row per example: ``example``, ``baseline``, ``knocked``, ``delta``."""
        pd = _pandas()
        return pd.DataFrame(
            {
                "example": range(len(self.baseline)),
                "baseline": self.baseline.per_example.tolist(),
                "knocked": self.knocked.per_example.tolist(),
                "delta": self.per_example_delta.tolist(),
            }
        )


@dataclass
class PatchResult:
    """The target model's metric before and after patching the source's head outputs into it.

    Attributes:
        original: the unpatched target's :class:`EvalResult`.
        patched: the target's result with ``heads`` patched from the source.
        heads: the patched heads.
        positions: the position rule used (``"all"``, ``"answer"``, ... or ``"custom"``).
    """

    original: EvalResult
    patched: EvalResult
    heads: HeadSet
    positions: str = "all"

    @property
    def delta(self) -> float:
        """``patched.score - original.score`` (positive: patching recovers performance)."""
        return self.patched.score - self.original.score

    @property
    def per_example_delta(self) -> Float[Tensor, "example"]:
        return self.patched.per_example - self.original.per_example

    def to_dataframe(self) -> Any:
        """One row per example: ``example``, ``original``, ``patched``, ``delta``."""
        pd = _pandas()
        return pd.DataFrame(
            {
                "example": range(len(self.original)),
                "original": self.original.per_example.tolist(),
                "patched": self.patched.per_example.tolist(),
                "delta": self.per_example_delta.tolist(),
            }
        )


@dataclass
class PatchingRow:
    """One row of :class:`PatchingTable`: a head set, its score after patching, and the delta."""

    name: str
    heads: HeadSet
    score: float
    delta: float
    draws: list[float] = field(default_factory=list)


@dataclass
class PatchingTable:
    """Zhao et al.'s patching table: original, intersection, complement and random head sets.

    Attributes:
        rows: :class:`PatchingRow` per head set, in order (the first is ``"original"``: no
            patching, delta 0). Random rows hold the mean over their draws (``draws``: each
            draw's score).
        metric: the metric's name.

    :attr:`scores` ``[n_rows]`` and :attr:`deltas` ``[n_rows]`` are the plot-ready tensors,
    aligned with :attr:`names`.
    """

    rows: list[PatchingRow]
    metric: str = "task default"

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.rows]

    @property
    def scores(self) -> Float[Tensor, "row"]:
        return torch.tensor([r.score for r in self.rows])

    @property
    def deltas(self) -> Float[Tensor, "row"]:
        return torch.tensor([r.delta for r in self.rows])

    def __getitem__(self, name: str) -> PatchingRow:
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"No row {name!r}; rows: {self.names}")

    def plot(self, **kwargs: Any) -> Any:
        """:func:`rhlens.plot.patching_table` of these rows (a plotly ``Figure``; not shown)."""
        from rhlens.plot import patching_table  # rhlens.plot sits above the analyzers

        return patching_table(self, **kwargs)

    def to_dataframe(self) -> Any:
        """One row per head set: ``name``, ``n_heads``, ``heads``, ``score``, ``delta``."""
        pd = _pandas()
        return pd.DataFrame(
            {
                "name": self.names,
                "n_heads": [len(r.heads) for r in self.rows],
                "heads": [" ".join(r.heads.labels()) for r in self.rows],
                "score": [r.score for r in self.rows],
                "delta": [r.delta for r in self.rows],
            }
        )


@dataclass
class PatchSweep:
    """The effect of patching each head alone from source into target.

    Attributes:
        baseline: ``[n_examples]`` the unpatched target's metric per example.
        patched: ``[n_layers, n_heads, n_examples]`` the metric with only that head patched.
        metric: the metric's name (``"logprob"``).

    :attr:`effect` ``[n_layers, n_heads]`` (mean over examples of patched minus baseline) is the
    plot-ready tensor, indexed by query head.
    """

    baseline: Float[Tensor, "example"]
    patched: Float[Tensor, "layer head example"]
    metric: str = "logprob"

    @property
    def effect(self) -> Float[Tensor, "layer head"]:
        return (self.patched - self.baseline[None, None, :]).mean(dim=-1)

    def plot(self, **kwargs: Any) -> Any:
        """:func:`rhlens.plot.head_heatmap` of :attr:`effect`, diverging at 0 (a plotly ``Figure``)."""
        from rhlens.plot import head_heatmap  # rhlens.plot sits above the analyzers

        kwargs.setdefault("diverging", True)
        return head_heatmap(self.effect, **kwargs)

    def top(self, k: int) -> HeadSet:
        """The ``k`` heads whose patching raises the metric most."""
        return HeadSet.top_k(self.effect, k)

    def to_dataframe(self) -> Any:
        """One row per head: ``head`` (``L0H0``), ``layer``, ``head_index``, ``effect``."""
        pd = _pandas()
        eff = self.effect
        rows = [
            {"head": str(Head(l, h)), "layer": l, "head_index": h, "effect": float(eff[l, h])}
            for l in range(eff.shape[0])
            for h in range(eff.shape[1])
        ]
        return pd.DataFrame(rows)
