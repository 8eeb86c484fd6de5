"""Graded knockout curves: which detector's ranking finds the heads the answer needs.

For each detector and each ``k`` on a grid, :func:`knockout_curves` knocks out that detector's
top-``k`` heads (:func:`rhlens.knockout`, zero ablation at the decoding rows by default) and
scores the model; the controls are ``n_random`` draws of ``k`` random heads outside *every*
detector's top-``k`` set. The detector whose curve falls fastest ranks the causal heads best.
The intact baseline is run once; each head set is one :func:`rhlens.evaluate` run over the
examples (teacher-forced ``"logprob"`` by default: one forward per batch).
"""

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from typing_extensions import Unpack

from rhlens.adapter import Model, architecture
from rhlens.evaluation import RunKwargs, RunOptions, evaluate
from rhlens.heads import HeadSet
from rhlens.interventions.ablation import knockout, random_heads


@dataclass
class KnockoutCurves:
    """The metric after knocking out each detector's top-k heads, and random-k controls.

    Attributes:
        ks: the grid of head counts.
        baseline: the intact model's mean metric.
        curves: detector -> ``[len(ks)]`` mean metric with its top-k heads knocked out.
        random: ``[len(ks), n_random]`` mean metric with random heads knocked out.
        heads: detector -> the knocked-out :class:`HeadSet` at each k.
        random_heads: per k, the random sets drawn.
        metric: the metric's name.

    >>> c = KnockoutCurves(ks=[1, 2], baseline=-1.0, curves={"a": torch.tensor([-2.0, -4.0])},
    ...                    random=torch.tensor([[-1.0, -1.5], [-1.5, -2.0]]))
    >>> c.drop("a").tolist(), c.random_drop().tolist()
    ([1.0, 3.0], [0.25, 0.75])
    """

    ks: list[int]
    baseline: float
    curves: dict[str, Float[Tensor, "k"]]
    random: Float[Tensor, "k draw"]
    heads: dict[str, list[HeadSet]] = field(default_factory=dict)
    random_heads: list[list[HeadSet]] = field(default_factory=list)
    metric: str = "logprob"

    def drop(self, detector: str) -> Float[Tensor, "k"]:
        """Baseline minus the metric with the detector's top-k heads out, per k."""
        return self.baseline - self.curves[detector]

    def random_drop(self) -> Float[Tensor, "k"]:
        """Baseline minus the mean metric over the random draws, per k."""
        return self.baseline - self.random.mean(dim=1)

    def to_dict(self) -> dict:
        """JSON-ready values (head sets as ``L4H4`` labels)."""
        return {
            "ks": self.ks, "baseline": self.baseline, "metric": self.metric,
            "curves": {d: v.tolist() for d, v in self.curves.items()}, "random": self.random.tolist(),
            "heads": {d: [[str(h) for h in s] for s in sets] for d, sets in self.heads.items()},
            "random_heads": [[[str(h) for h in s] for s in draws] for draws in self.random_heads],
        }


def _scores_of(value: Any) -> Tensor:
    return (value.scores if hasattr(value, "scores") else torch.as_tensor(value)).detach().float().cpu()


def knockout_curves(
    model: Model,
    examples: Sequence[Any],
    rankings: Mapping[str, Any],
    *,
    ks: Sequence[int] = (1, 2, 3, 5, 8),
    n_random: int = 3,
    mode: str = "zero",
    scope: str = "decode",
    seed: int = 0,
    options: RunOptions | None = None,
    **run: Unpack[RunKwargs],
) -> KnockoutCurves:
    """Knock out each detector's top-k heads for every ``k`` in ``ks``, and random-k controls.

    Args:
        rankings: detector name -> its scores (:class:`rhlens.HeadScores` or ``[n_layers, n_heads]``).
        ks: head counts (each at most the number of heads).
        n_random: random draws per k, outside the union of every detector's top-k (seeds
            ``seed, seed + 1, ...``).
        mode, scope: as in :func:`rhlens.knockout`.
        options: :class:`rhlens.RunOptions` or its keywords; the metric defaults to ``"logprob"``.

    Raises:
        ValueError: no ranking, a ``k`` outside ``1 .. n_heads``, or too few heads left for the
            random draws at some ``k`` (naming it).

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]), seed=0)
    >>> c = knockout_curves(model, [ex], {"a": torch.arange(8.0).reshape(2, 4)}, ks=[1, 2], n_random=2, progress=False)
    >>> c.heads["a"], c.random.shape
    ([HeadSet([L1H3]), HeadSet([L1H2, L1H3])], torch.Size([2, 2]))
    """
    if not rankings:
        raise ValueError("knockout_curves needs at least one detector's scores")
    if options is None:
        run.setdefault("metric", "logprob")
    opts = RunOptions.merge(options, run, what="knockout_curves")
    arch = architecture(model)
    total = arch.n_layers * arch.n_heads
    bad = [k for k in ks if not 1 <= k <= total]
    if bad or not ks:
        raise ValueError(f"knockout_curves: ks {list(ks)} must be in 1..{total} (the model's heads)")
    scores = {name: _scores_of(v) for name, v in rankings.items()}
    heads = {name: [HeadSet.top_k(s, k) for k in ks] for name, s in scores.items()}
    drawn = []
    for i, k in enumerate(ks):
        exclude = HeadSet(h for sets in heads.values() for h in sets[i])
        if n_random and total - len(exclude) < k:
            raise ValueError(f"knockout_curves: at k={k} only {total - len(exclude)} heads lie outside every "
                             f"detector's top {k}; use smaller ks or fewer detectors")
        drawn.append([random_heads(model, k, exclude, seed + j) for j in range(n_random)])
    baseline = evaluate(model, examples, options=opts)

    def knocked(heads: HeadSet) -> float:
        with knockout(model, heads, mode, scope=scope, batch_size=opts.batch_size):
            return evaluate(model, examples, options=opts).score

    curves = {name: torch.tensor([knocked(hs) for hs in sets]) for name, sets in heads.items()}
    values = torch.tensor([[knocked(d) for d in draws] for draws in drawn]).reshape(len(ks), n_random)
    return KnockoutCurves(ks=list(ks), baseline=baseline.score, curves=curves, random=values, heads=heads,
                          random_heads=drawn, metric=baseline.metric)
