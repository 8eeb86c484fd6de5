"""Result objects of knockout and patching, each with a plot-ready tensor (:class:`EvalResult`,
the result of :func:`rhlens.evaluate`, lives in :mod:`rhlens.evaluation`).

:class:`KnockoutEffect`, :class:`PatchResult` and :class:`PatchSweep` share one shape,
:class:`BeforeAfter`: a ``baseline`` and the run ``after`` the intervention, with
``per_example_delta`` and ``effect``; the first two add the scalar ``delta``
(:class:`ScoreChange`).

Scores are floats, per-example values ``[n_examples]`` float tensors on the CPU. ``to_dataframe()``
imports pandas lazily (``pip install pandas``).

Examples: on each class.
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.evaluation import EvalResult
from rhlens.evaluation import require_pandas as _pandas
from rhlens.heads import Head, HeadSet


def _values(result: Any) -> Tensor:
    """Per-example values ``[..., n_examples]``: an :class:`EvalResult`'s, or a tensor as it is."""
    return result.per_example if isinstance(result, EvalResult) else result


class BeforeAfter:
    """The shape every intervention result shares: a ``baseline`` (the intact model) and the run
    after the intervention (:attr:`after`, named by the subclass: ``knocked``, ``patched``).

    Both hold per-example values (an :class:`EvalResult`, or a tensor ``[..., n_examples]``), so
    :attr:`per_example_delta` is ``after - baseline`` per example and :attr:`effect` its mean
    over examples (a 0-d tensor for one intervention, ``[n_layers, n_heads]`` for a sweep).
    """

    AFTER: ClassVar[str] = "after"
    baseline: Any

    @property
    def after(self) -> Any:
        """The result after the intervention (``knocked``, ``patched``)."""
        return getattr(self, self.AFTER)

    @property
    def per_example_delta(self) -> Float[Tensor, "... example"]:
        """``after - baseline`` per example (broadcast over a sweep's heads)."""
        return _values(self.after) - _values(self.baseline)

    @property
    def effect(self) -> Float[Tensor, "..."]:
        """Mean over examples of :attr:`per_example_delta`."""
        return self.per_example_delta.mean(dim=-1)


class ScoreChange(BeforeAfter):
    """A :class:`BeforeAfter` of two :class:`EvalResult`: one head set, one score each."""

    @property
    def delta(self) -> float:
        """``after.score - baseline.score`` (the score is each result's mean)."""
        return self.after.score - self.baseline.score

    def to_dataframe(self) -> Any:
        """One row per example: ``example``, ``baseline``, the after column, ``delta``."""
        pd = _pandas()
        return pd.DataFrame(
            {
                "example": range(len(self.baseline)),
                "baseline": self.baseline.per_example.tolist(),
                self.AFTER: self.after.per_example.tolist(),
                "delta": self.per_example_delta.tolist(),
            }
        )


@dataclass
class KnockoutEffect(ScoreChange):
    """A metric with and without a head knockout.

    Attributes:
        baseline: the intact model's :class:`EvalResult`.
        knocked: the result with ``heads`` knocked out (:attr:`after`); :attr:`delta` is
            ``knocked.score - baseline.score`` (negative: the knockout hurts).
        heads: the knocked-out heads.
        mode: ``"zero"``, ``"mean"`` or ``"uniform"``.
        scope: ``"decode"`` (decoding steps only, as Wu et al.) or ``"all"``.
        controls: the results with each random control set knocked out instead (may be empty).
        control_heads: the random control sets, aligned with ``controls``.
        control_excluded: the heads the random controls avoided (``heads`` included).

    >>> import torch
    >>> base = EvalResult(per_example=torch.tensor([1.0, 0.0]), predictions=["a", "b"])
    >>> knocked = EvalResult(per_example=torch.tensor([0.0, 0.0]), predictions=["c", "b"])
    >>> eff = KnockoutEffect(baseline=base, knocked=knocked, heads=HeadSet(["L0H1"]), mode="zero")
    >>> eff.baseline.score, eff.knocked.score, eff.delta
    (0.5, 0.0, -0.5)
    >>> eff.per_example_delta.tolist()
    [-1.0, 0.0]
    """

    AFTER: ClassVar[str] = "knocked"
    baseline: EvalResult
    knocked: EvalResult
    heads: HeadSet
    mode: str
    scope: str = "decode"
    controls: list[EvalResult] = field(default_factory=list)
    control_heads: list[HeadSet] = field(default_factory=list)
    control_excluded: HeadSet = field(default_factory=HeadSet)

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


@dataclass
class PatchResult(ScoreChange):
    """The target model's metric before and after patching the source's head outputs into it.

    Attributes:
        baseline: the unpatched target's :class:`EvalResult`.
        patched: the target's result with ``heads`` patched from the source (:attr:`after`);
            :attr:`delta` is ``patched.score - baseline.score`` (positive: patching recovers
            performance).
        heads: the patched heads.
        positions: the position rule used (``"all"``, ``"answer"``, ... or ``"custom"``).

    >>> import torch
    >>> base = EvalResult(per_example=torch.tensor([-3.0, -1.0]), metric="logprob")
    >>> patched = EvalResult(per_example=torch.tensor([-1.0, -1.0]), metric="logprob")
    >>> res = PatchResult(baseline=base, patched=patched, heads=HeadSet(["L1H2"]))
    >>> res.delta, res.per_example_delta.tolist(), res.after is res.patched
    (1.0, [2.0, 0.0], True)
    """

    AFTER: ClassVar[str] = "patched"
    baseline: EvalResult
    patched: EvalResult
    heads: HeadSet
    positions: str = "all"


@dataclass
class PatchingRow:
    """One row of :class:`PatchingTable`: a head set, its score after patching, and the delta."""

    name: str
    heads: HeadSet
    score: float
    delta: float
    draws: list[float] = field(default_factory=list)
    per_example: list[float] = field(default_factory=list)  # each example's score (random rows: mean over draws)


@dataclass
class PatchingTable:
    """Zhao et al.'s patching table: original, intersection, complement and random head sets.

    Attributes:
        rows: :class:`PatchingRow` per head set, in order (the first is ``"original"``: no
            patching, delta 0). Random rows hold the mean over their draws (``draws``: each
            draw's score).
        metric: the metric's name.
        control_excluded: the heads the random rows avoided.

    :attr:`scores` ``[n_rows]`` and :attr:`deltas` ``[n_rows]`` are the plot-ready tensors,
    aligned with :attr:`names`.

    >>> table = PatchingTable(rows=[
    ...     PatchingRow("original", HeadSet(), score=-2.0, delta=0.0),
    ...     PatchingRow("intersection", HeadSet(["L0H1"]), score=-1.5, delta=0.5),
    ...     PatchingRow("random (1, as intersection)", HeadSet(["L1H3"]), score=-2.0, delta=0.0,
    ...                 draws=[-2.1, -1.9])], metric="logprob")
    >>> table.names[1], table.deltas.tolist(), table["intersection"].heads
    ('intersection', [0.0, 0.5, 0.0], HeadSet([L0H1]))
    """

    rows: list[PatchingRow]
    metric: str = "task default"
    control_excluded: HeadSet = field(default_factory=HeadSet)

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
        """:func:`rhlens.plot.patching_table_figure` of these rows (a plotly ``Figure``; not shown)."""
        from rhlens.plot import patching_table_figure  # rhlens.plot sits above the analyzers

        return patching_table_figure(self, **kwargs)

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
class PatchSweep(BeforeAfter):
    """The effect of patching each head alone from source into target.

    Attributes:
        baseline: ``[n_examples]`` the unpatched target's metric per example.
        patched: ``[n_layers, n_heads, n_examples]`` the metric with only that head patched
            (:attr:`after`).
        metric: the metric's name (``"logprob"``).

    :attr:`effect` ``[n_layers, n_heads]`` (mean over examples of patched minus baseline) is the
    plot-ready tensor, indexed by query head.

    >>> import torch
    >>> patched = torch.full((2, 2, 3), -2.0); patched[1, 0] = torch.tensor([-1.0, -1.0, -0.5])
    >>> sweep = PatchSweep(baseline=torch.tensor([-2.0, -2.0, -2.0]), patched=patched)
    >>> sweep.effect
    tensor([[0.0000, 0.0000],
            [1.1667, 0.0000]])
    >>> sweep.top(1)
    HeadSet([L1H0])
    """

    AFTER: ClassVar[str] = "patched"
    EXAMPLE_AXES: ClassVar[dict[str, int]] = {"patched": -1}
    """Tensor fields whose example axis is not 0 (how :func:`rhlens.distributed_eval.merge_shards`
    puts shards back together)."""
    baseline: Float[Tensor, "example"]
    patched: Float[Tensor, "layer head example"]
    metric: str = "logprob"

    @property
    def effect(self) -> Float[Tensor, "layer head"]:
        """Mean over examples of ``patched - baseline``, per query head."""
        return super().effect

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
