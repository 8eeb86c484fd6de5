"""Head detectors side by side: run several on the same examples and measure how they agree.

:func:`compare_detectors` runs each named detector (:data:`DETECTORS`) on the same model and
examples and, for every pair, reports Spearman's rho over all heads and the overlap of their
top-k heads (k = 5, 10 and 20% of the heads by default), each with a bootstrap interval over the
examples (:mod:`rhlens.scoring.agreement`). Which ranking is *causal* is a different question,
answered by knocking each detector's top heads out (:func:`rhlens.interventions.curves.knockout_curves`).
"""

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from rhlens.adapter import Model, architecture
from rhlens.progress import progress_bar
from rhlens.scoring.agreement import bootstrap_interval, spearman, top_k_overlap
from rhlens.scoring.detectors.attention_mass import attention_mass
from rhlens.scoring.detectors.attribution import knockout_attribution
from rhlens.scoring.detectors.query_focus import query_focus, query_focus_and_mass
from rhlens.scoring.results import HeadScores
from rhlens.scoring.retrieval import retrieval_scores

Detector = Callable[..., HeadScores]


def _wu(method: str) -> Detector:
    def run(model: Model, examples: Sequence[Any], *, batch_size: int, chunk_size: int | None, max_new_tokens: int,
            rouge_gate: float | None, progress: bool) -> HeadScores:
        return retrieval_scores(model, examples, method=method, max_new_tokens=max_new_tokens, rouge_gate=rouge_gate,
                                batch_size=batch_size, chunk_size=chunk_size, progress=progress)

    return run


def _plain(fn: Callable[..., HeadScores]) -> Detector:
    def run(model: Model, examples: Sequence[Any], *, batch_size: int, chunk_size: int | None, progress: bool,
            **_: Any) -> HeadScores:
        return fn(model, examples, batch_size=batch_size, chunk_size=chunk_size, progress=progress)

    return run


def _attribution(model: Model, examples: Sequence[Any], *, batch_size: int, progress: bool, **_: Any) -> HeadScores:
    return knockout_attribution(model, examples, batch_size=batch_size, progress=progress)


DETECTORS: dict[str, Detector] = {
    "decode": _wu("decode"),
    "forced": _wu("forced"),
    "attention_mass": _plain(attention_mass),
    "query_focus": _plain(query_focus),
    "attribution": _attribution,
}
"""Detector name -> ``fn(model, examples, *, batch_size, chunk_size, max_new_tokens, rouge_gate, progress)``."""

DEFAULT_FRACTIONS = (0.05, 0.10, 0.20)


def check_detectors(names: Sequence[str], *, what: str = "detectors") -> list[str]:
    """The names, checked against :data:`DETECTORS` (a ``ValueError`` lists the known ones)."""
    names = list(names)
    unknown = [n for n in names if n not in DETECTORS]
    if unknown or not names:
        raise ValueError(f"{what}: unknown detector(s) {unknown or names}; choose from {', '.join(DETECTORS)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: a detector is listed twice in {names}")
    return names


@dataclass
class DetectorComparison:
    """Detectors' scores on the same examples and their pairwise agreement.

    Attributes:
        scores: detector name -> its :class:`HeadScores` (``per_example`` ``[n, layer, head]``).
        ks: the top-k sizes compared.
        agreement: one dict per pair: ``a``, ``b``, ``spearman``, ``spearman_ci`` (lo, hi), and per
            ``k`` ``overlap[k]`` with ``overlap_ci[k]``.

    >>> import torch
    >>> hs = lambda t: HeadScores(torch.tensor(t))
    >>> scores = {"a": hs([[[0.9, 0.1, 0.5]], [[0.7, 0.0, 0.4]]]), "b": hs([[[0.2, 0.8, 0.5]], [[0.1, 0.6, 0.3]]])}
    >>> cmp = DetectorComparison(scores, ks=[1], agreement=agreement_rows(scores, [1], n_boot=10))
    >>> cmp.agreement[0]["spearman"], cmp.to_dataframe()[["a", "b", "top1"]].values.tolist()
    (-1.0, [['a', 'b', 0.0]])
    """

    scores: dict[str, HeadScores]
    ks: list[int]
    agreement: list[dict] = field(default_factory=list)

    def to_dataframe(self) -> Any:
        """One row per pair: ``a, b, spearman, spearman_lo, spearman_hi`` and per k
        ``top<k>, top<k>_lo, top<k>_hi``. pandas is imported here."""
        import pandas as pd

        rows = []
        for row in self.agreement:
            out = {"a": row["a"], "b": row["b"], "spearman": row["spearman"],
                   "spearman_lo": row["spearman_ci"][0], "spearman_hi": row["spearman_ci"][1]}
            for k in self.ks:
                out[f"top{k}"] = row["overlap"][k]
                out[f"top{k}_lo"], out[f"top{k}_hi"] = row["overlap_ci"][k]
            rows.append(out)
        return pd.DataFrame(rows)

    def to_dict(self) -> dict:
        """JSON-ready: every detector's mean scores ``[layer][head]`` and the agreement rows."""
        def clean(v: float) -> float | None:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "ks": self.ks,
            "scores": {name: hs.scores.tolist() for name, hs in self.scores.items()},
            "agreement": [
                {"a": r["a"], "b": r["b"], "spearman": clean(r["spearman"]), "spearman_ci": [clean(x) for x in r["spearman_ci"]],
                 "overlap": {str(k): r["overlap"][k] for k in self.ks},
                 "overlap_ci": {str(k): [clean(x) for x in r["overlap_ci"][k]] for k in self.ks}}
                for r in self.agreement
            ],
        }


def agreement_rows(scores: dict[str, HeadScores], ks: Sequence[int], *, n_boot: int = 200, seed: int = 0) -> list[dict]:
    """:attr:`DetectorComparison.agreement` for every pair of ``scores`` (see the module)."""
    names = list(scores)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = scores[a], scores[b]
            boot = dict(n_boot=n_boot, seed=seed, weights_a=sa.counted, weights_b=sb.counted)
            row: dict = {"a": a, "b": b, "spearman": spearman(sa.scores, sb.scores),
                         "spearman_ci": bootstrap_interval(sa.per_example, sb.per_example, spearman, **boot),
                         "overlap": {}, "overlap_ci": {}}
            for k in ks:
                row["overlap"][k] = top_k_overlap(sa.scores, sb.scores, k)
                row["overlap_ci"][k] = bootstrap_interval(
                    sa.per_example, sb.per_example, lambda x, y, k=k: top_k_overlap(x, y, k), **boot)
            rows.append(row)
    return rows


def compare_detectors(
    model: Model,
    examples: Sequence[Any],
    *,
    detectors: Sequence[str] = tuple(DETECTORS),
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    n_boot: int = 200,
    seed: int = 0,
    max_new_tokens: int = 50,
    rouge_gate: float | None = 0.5,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> DetectorComparison:
    """Run ``detectors`` on ``model`` and ``examples`` and measure their pairwise agreement.

    Args:
        detectors: names from :data:`DETECTORS` (default: all five).
        fractions: top-k sizes as fractions of the heads (each at least one head).
        n_boot: bootstrap draws over the examples for the intervals (0: none, intervals NaN).
        max_new_tokens: Wu et al.'s decoding budget (``decode`` only).
        rouge_gate: Wu et al.'s gate (``decode``, ``forced``; ``None``: every example counts).

    Returns:
        :class:`DetectorComparison` (scores per detector, agreement per pair).

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]), seed=0)
    >>> cmp = compare_detectors(model, [ex, ex], detectors=["attention_mass", "attribution"], n_boot=5, progress=False)
    >>> list(cmp.scores), cmp.ks, len(cmp.agreement)
    (['attention_mass', 'attribution'], [1, 1, 2], 1)
    """
    names = check_detectors(detectors, what="compare_detectors")
    arch = architecture(model)
    n_heads = arch.n_layers * arch.n_heads
    ks = [max(1, round(f * n_heads)) for f in fractions]
    scores: dict[str, HeadScores] = {}
    joint = {"attention_mass", "query_focus"} <= set(names)  # one run gives both (the last row is the question's)
    for name in progress_bar(names, enabled=progress, desc="detectors"):
        if joint and name in ("attention_mass", "query_focus"):
            if name not in scores:
                scores["query_focus"], scores["attention_mass"] = query_focus_and_mass(
                    model, examples, batch_size=batch_size, chunk_size=chunk_size, progress=progress)
            continue
        scores[name] = DETECTORS[name](model, examples, batch_size=batch_size, chunk_size=chunk_size,
                                       max_new_tokens=max_new_tokens, rouge_gate=rouge_gate, progress=progress)
    scores = {name: scores[name] for name in names}
    return DetectorComparison(scores=scores, ks=ks, agreement=agreement_rows(scores, ks, n_boot=n_boot, seed=seed))
