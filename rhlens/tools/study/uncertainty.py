"""The study's intervals: every number of a task with a bootstrap 95% interval.

:func:`task_uncertainty` takes one task's entry per seed (``results["tasks"][task]`` of each
replicate, one entry for a one-seed study) and returns, per model:

- ``accuracy``: the mean test score, resampled over test examples (and over seeds when there are
  several: :func:`rhlens.stats.bootstrap_mean`);
- ``gap``: the model's score minus the real-data model's on the same examples (paired);
- ``recall``: recall of the real model's retrieval heads: with one seed, resampled over the scored
  examples (the compare stage's ``recall_interval``); with several, over the seeds' recalls;
- ``knockout``: the score change with the retrieval heads knocked out, with random heads knocked
  out (per example, the mean over the draws), and their difference, all paired per example;
- ``patching``: each patching row's change against the unpatched model (paired per example);

and ``correlation``: Spearman and Pearson of recall against accuracy across the non-real models
(model means over seeds), each with a permutation p-value and a bootstrap interval over models.

Records written before intervals existed (no per-example values) give ``None`` there.
"""

from typing import Any

from rhlens.stats import Interval, bootstrap_mean, bootstrap_paired_delta, correlation

REAL = "real"
ROW_KINDS = ("intersection", "complement", "random (as intersection)", "random (as complement)")


def _iv(x: Interval | None) -> dict[str, Any] | None:
    return x.to_dict() if x is not None else None


def row_kind(name: str) -> str:
    """A patching row's kind, the same in every seed (random rows carry their size in the name).

    >>> row_kind("random (2, as complement)"), row_kind("intersection")
    ('random (as complement)', 'intersection')
    """
    if name.startswith("random"):
        return "random (as " + name.rsplit("as ", 1)[1]
    return name


def _row_size(name: str, row: dict[str, Any]) -> int:
    """Heads patched per draw: a random row's name holds its size (its ``heads`` are every draw's).

    >>> _row_size("random (3, as intersection)", {"heads": ["L0H1"] * 6}), _row_size("complement", {"heads": []})
    (3, 0)
    """
    if name.startswith("random ("):
        return int(name[len("random ("):].split(",")[0])
    return len(row["heads"])


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _knockout(records: list[dict[str, Any]], seed: int) -> dict[str, Any] | None:
    per = [r.get("per_example") for r in records]
    if any(r.get("retrieval") is None for r in records) or any(p is None for p in per):
        return None
    base = [p["baseline"] for p in per]
    knocked = [p["retrieval"] for p in per]
    random = [[_mean(list(col)) for col in zip(*p["random"])] for p in per]
    return {
        "retrieval_delta": _iv(bootstrap_paired_delta(knocked, base, seed=seed)),
        "random_delta": _iv(bootstrap_paired_delta(random, base, seed=seed)),
        "retrieval_minus_random": _iv(bootstrap_paired_delta(knocked, random, seed=seed)),
        "n_heads": [len(r["heads"]) for r in records],
    }


def _patching(records: list[dict[str, Any]], seed: int) -> dict[str, Any] | None:
    rows = [r.get("rows") or {} for r in records]
    if not all(rows) or any("per_example" not in row for rs in rows for row in rs.values()):
        return None
    out: dict[str, Any] = {}
    by_kind = [{row_kind(name): {**row, "size": _row_size(name, row)} for name, row in rs.items()} for rs in rows]
    for kind in ROW_KINDS:
        if not all(kind in k for k in by_kind):
            continue
        after = [k[kind]["per_example"] for k in by_kind]
        before = [k["original"]["per_example"] for k in by_kind]
        out[kind] = {"delta": _iv(bootstrap_paired_delta(after, before, seed=seed)),
                     "n_heads": [k[kind]["size"] for k in by_kind]}
    return out


def _recall(entries: list[dict[str, Any]], model: str, method: str, seed: int) -> dict[str, Any] | None:
    per_seed = [e["compare"]["methods"][method]["models"][model] for e in entries]
    values = [p["recall"] for p in per_seed]
    if any(v is None for v in values):
        return None
    if len(per_seed) == 1:
        return per_seed[0].get("recall_interval")
    iv = bootstrap_mean(values, seed=seed)  # seeds are the units here
    return {**iv.to_dict(), "over": "seeds", "per_seed": values}


def task_uncertainty(entries: list[dict[str, Any]], *, method: str, seed: int = 0) -> dict[str, Any]:
    """Intervals of one task's numbers, from its entry in each seed's results (see the module doc).

    >>> rec = {"accuracy": 0.5, "per_example": [1.0, 0.0]}
    >>> entry = {"models": {"real": rec, "x": {"accuracy": 0.0, "per_example": [0.0, 0.0]}},
    ...          "compare": {"methods": {"decode": {"models": {"real": {"recall": 1.0}, "x": {"recall": 0.0}},
    ...                                             "correlation": {"models": ["x"]}}}},
    ...          "knockout": {}, "patching": {}}
    >>> u = task_uncertainty([entry], method="decode")
    >>> u["models"]["x"]["accuracy"]["estimate"], u["models"]["x"]["gap"]["estimate"]
    (0.0, -0.5)
    """
    models = list(entries[0]["models"])
    out: dict[str, Any] = {"n_seeds": len(entries), "models": {}}
    real_per = [e["models"][REAL]["per_example"] for e in entries]
    for m in models:
        per = [e["models"][m]["per_example"] for e in entries]
        info: dict[str, Any] = {
            "accuracy": _iv(bootstrap_mean(per, seed=seed)),
            "gap": _iv(bootstrap_paired_delta(per, real_per, seed=seed)) if m != REAL else None,
            "recall": _recall(entries, m, method, seed),
        }
        ko = [e["knockout"].get(m) for e in entries]
        info["knockout"] = _knockout(ko, seed) if all(ko) else None
        pt = [e["patching"].get(m) for e in entries]
        info["patching"] = _patching(pt, seed) if m != REAL and all(pt) else None
        out["models"][m] = info
    others = entries[0]["compare"]["methods"][method]["correlation"]["models"]
    recall = [out["models"][m]["recall"] for m in others]
    acc = [out["models"][m]["accuracy"]["estimate"] for m in others]
    if all(r is not None for r in recall):
        xs = [r["estimate"] for r in recall]
        out["correlation"] = {k: correlation(xs, acc, method=k, seed=seed) for k in ("spearman", "pearson")}
    else:
        out["correlation"] = _undefined(len(others), "the real-data model has no retrieval head, so recall is undefined")
    out["correlation"]["models"] = others
    if len(entries) > 1:
        out["correlation_replicates"] = _replicate_correlation(entries, others, method, seed)
    return out


def _undefined(n: int, why: str) -> dict[str, Any]:
    """Spearman and Pearson records that say why they are undefined (the shape of :func:`rhlens.stats.correlation`'s)."""
    return {k: {"method": k, "estimate": None, "p_value": None, "interval": None, "n": n, "why": why}
            for k in ("spearman", "pearson")}


def _replicate_correlation(entries: list[dict[str, Any]], models: list[str], method: str, seed: int) -> dict[str, Any]:
    """Spearman and Pearson over every (seed, model) point, permuted within each seed.

    With 5 models a correlation of the model means cannot reach a permutation p below 1/60; the
    seeds' own (recall, accuracy) points give the test its power, and permuting only within a seed
    keeps a seed's overall level from reading as an association.
    """
    points = [(e["compare"]["methods"][method]["models"][m]["recall"], e["models"][m]["accuracy"], i)
              for i, e in enumerate(entries) for m in models]
    if any(r is None for r, _, _ in points):
        return _undefined(len(points), "a seed's real-data model has no retrieval head, so recall is undefined")
    xs, ys, groups = ([p[k] for p in points] for k in range(3))
    return {k: correlation(xs, ys, method=k, seed=seed, groups=groups) for k in ("spearman", "pearson")}
