"""Zhao et al.'s patching table: which head sets carry the source model's advantage?

Given the source's and the target's retrieval heads (top-``k`` of each model's scores), the source's
head outputs are patched into the target for

- ``"intersection"``: heads in both top-``k`` sets;
- ``"complement"``: the source's top-``k`` heads that are *not* among the target's;
- ``"random (n, as intersection)"``, ``"random (n, as complement)"``: ``n`` random heads (the
  size of that set), ``n_random`` draws each (the row holds their mean). The control heads are
  drawn outside ``exclude``, by default every head above the retrieval threshold (0.1) in the
  source's and the target's scores (as Wu et al. keep their top retrieval heads out of the random
  controls), and always outside both top-``k`` sets;

next to ``"original"`` (the unpatched target). Deltas are against ``"original"``.

Example: :func:`patching_table`.
"""

from typing import Any, Sequence

from torch import Tensor
from typing_extensions import Unpack

from rhlens.adapter import Model, architecture
from rhlens.evaluation import EvalResult, RunKwargs, RunOptions, baseline_or_evaluate
from rhlens.heads import HeadSet, as_head_set
from rhlens.interventions.head_sets import RETRIEVAL_THRESHOLD, control_exclusion
from rhlens.interventions.ablation import random_heads
from rhlens.interventions.patching import PositionRule, patch_heads
from rhlens.interventions.results import PatchingRow, PatchingTable


def _head_set(heads: Any, k: int | None, what: str) -> HeadSet:
    """The top-``k`` of a ``[n_layers, n_heads]`` score tensor (or of an object's ``.scores``, e.g.
    ``HeadScores``), or a given set of heads (then ``k`` must be ``None`` or its size)."""
    scores = getattr(heads, "scores", heads)
    if isinstance(scores, Tensor):
        if k is None:
            raise ValueError(f"{what} are scores: pass k= to take the top-k heads")
        return HeadSet.top_k(scores, k)
    hs = as_head_set(heads)
    if k is not None and len(hs) != k:
        raise ValueError(f"{what} is a set of {len(hs)} heads but k={k}; pass scores to take a top-k, or k=None")
    return hs


def patching_table(
    source: Model,
    target: Model,
    examples: Sequence[Any],
    source_heads: Any,
    target_heads: Any,
    k: int | None = None,
    *,
    positions: PositionRule = "all",
    n_random: int = 1,
    seed: int = 0,
    exclude: Any = None,
    threshold: float = RETRIEVAL_THRESHOLD,
    baseline: EvalResult | None = None,
    options: RunOptions | None = None,
    **run: Unpack[RunKwargs],
) -> PatchingTable:
    """Patch the intersection, the complement and random head sets from ``source`` into ``target``.

    Args:
        source, target: models that pass :func:`rhlens.check_compatible` (the paper: the real-data
            model into a synthetic-data model).
        examples: evaluation examples.
        source_heads, target_heads: each model's retrieval heads: ``[n_layers, n_heads]`` scores
            (or ``HeadScores``) with ``k``, or head sets (``k=None``).
        k: top-``k`` heads taken from scores.
        positions: as in :func:`rhlens.patch_heads`.
        n_random: random draws per random row (seeds ``seed, seed + 1, ...``).
        exclude: heads the random rows never draw (always also both top-``k`` sets). Default:
            every head above ``threshold`` in ``source_heads`` and ``target_heads`` given as
            scores (:func:`rhlens.interventions.head_sets.control_exclusion` says the rule); when
            both are head sets, ``exclude`` is required (``exclude=()``: none).
        threshold: the retrieval threshold for the default exclusion (Wu et al.: 0.1).
        baseline: the unpatched target's :func:`rhlens.evaluate` result on ``examples`` with the same
            metric, when the caller has it (the study's evaluate stage); computed when ``None``.
        options: a :class:`rhlens.RunOptions`, or its fields as keywords (``metric``,
            ``max_new_tokens``, ``batch_size``, ``chunk_size``, ``progress``), as in
            :func:`rhlens.evaluate`.

    Returns:
        :class:`PatchingTable` with rows ``original``, ``intersection``, ``complement``,
        ``random (n, as intersection)`` and ``random (n, as complement)``.

    >>> import torch
    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> tok = word_level_tokenizer([ex.prompt + ex.completion])
    >>> src_scores, tgt_scores = torch.zeros(2, 4), torch.zeros(2, 4)
    >>> src_scores[0, :2], tgt_scores[0, 1:3] = 0.5, 0.5          # L0H0, L0H1 and L0H1, L0H2
    >>> table = patching_table(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex],
    ...                        src_scores, tgt_scores, k=2, metric="logprob", progress=False)
    >>> table.names[0], table.deltas[0].item(), table["intersection"].heads
    ('original', 0.0, HeadSet([L0H1]))
    """
    opts = RunOptions.merge(options, run, what="patching_table")
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    src = _head_set(source_heads, k, "source_heads")
    tgt = _head_set(target_heads, k, "target_heads")
    scored = [g for g in (source_heads, target_heads) if isinstance(getattr(g, "scores", g), Tensor)]
    arch = architecture(target)
    excluded = control_exclusion(src | tgt, exclude=exclude, scores=scored or None, threshold=threshold,
                                 n_total=arch.n_layers * arch.n_heads, what="patching_table (random rows)")
    baseline = baseline_or_evaluate(baseline, target, examples, opts, what="patching_table")
    rows = [PatchingRow("original", HeadSet(), baseline.score, 0.0, per_example=baseline.per_example.tolist())]

    def patched(heads: HeadSet) -> list[float]:
        if not heads:
            return baseline.per_example.tolist()
        return patch_heads(source, target, examples, heads, positions=positions, baseline=baseline,
                           options=opts).patched.per_example.tolist()

    def mean(xs: list[float]) -> float:
        return sum(xs) / len(xs) if xs else float("nan")

    inter, comp = src & tgt, src - tgt
    for name, heads in (("intersection", inter), ("complement", comp)):
        per = patched(heads)
        rows.append(PatchingRow(name, heads, mean(per), mean(per) - baseline.score, per_example=per))
    for name, size in (("intersection", len(inter)), ("complement", len(comp))):
        runs, drawn = [], HeadSet()
        for i in range(n_random):
            heads = random_heads(target, size, exclude=excluded, seed=seed + i)
            drawn = drawn | heads
            runs.append(patched(heads))
        draws = [mean(r) for r in runs]
        per = [mean(list(col)) for col in zip(*runs)]
        rows.append(PatchingRow(f"random ({size}, as {name})", drawn, mean(draws), mean(draws) - baseline.score, draws,
                                per_example=per))
    return PatchingTable(rows=rows, metric=baseline.metric, control_excluded=excluded)
