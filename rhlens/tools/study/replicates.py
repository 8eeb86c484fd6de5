"""Pooling a study's replicates (``seeds = [0, 1, 2]``): one results dict over all seeds.

Each seed ran as a whole one-seed study in ``seed-<n>/`` (its own data, fine-tunes and random
heads, with its own ``results.json`` and reports). The pooled results keep the first seed's entry
for what has no pooled form (head lists, patching notes), and replace:

- ``uncertainty``: every interval over seeds and test examples
  (:func:`rhlens.tools.study.uncertainty.task_uncertainty` of all the seeds' entries);
- each model's ``accuracy`` and the compare stage's ``recall``: the means over seeds;
- score maps: the mean over seeds;

and add ``by_seed`` (each seed's accuracy, recall, retrieval heads and gate counts) and the findings computed
from the pooled numbers.
"""

import copy
import time
from typing import Any

from rhlens.tools.study.config import StudyConfig
from rhlens.tools.study.findings import findings
from rhlens.tools.study.uncertainty import task_uncertainty


def _mean_maps(maps: list[list[list[float]]]) -> list[list[float]]:
    return [[round(sum(m[i][j] for m in maps) / len(maps), 6) for j in range(len(maps[0][0]))] for i in range(len(maps[0]))]


def pool_task(entries: list[dict[str, Any]], seeds: list[int], variants: list[str], method: str) -> dict[str, Any]:
    """One task's entry pooled over its replicates (see the module doc)."""
    pooled = copy.deepcopy(entries[0])
    unc = task_uncertainty(entries, method=method, seed=seeds[0])
    pooled["uncertainty"] = unc
    compare = pooled["compare"]["methods"][method]
    for m, info in pooled["models"].items():
        info["accuracy"] = unc["models"][m]["accuracy"]["estimate"]
        for meth in info["scores"]:
            info["scores"][meth] = _mean_maps([e["models"][m]["scores"][meth] for e in entries])
        if unc["models"][m]["recall"] is not None:
            compare["models"][m]["recall"] = unc["models"][m]["recall"]["estimate"]
    pooled["by_seed"] = {
        str(s): {m: {"accuracy": e["models"][m]["accuracy"],
                     "recall": e["compare"]["methods"][method]["models"][m]["recall"],
                     "retrieval_heads": e["models"][m]["retrieval_heads"][method],
                     "n_counted": e["models"][m]["n_counted"][method]} for m in e["models"]}
        for s, e in zip(seeds, entries)
    }
    pooled["note"] = (f"Knockout draws and patching notes are seed {seeds[0]}'s; accuracy, recall and every interval "
                      "pool all seeds; score maps are their mean; by_seed holds each seed's heads and gate counts.")
    pooled["findings"] = findings(pooled, variants, method)
    return pooled


def pool_results(per_seed: list[dict[str, Any]], config: StudyConfig, *, digest: str, seconds: float) -> dict[str, Any]:
    """The results of a several-seed study from each seed's results (in ``config.seeds`` order)."""
    first = per_seed[0]
    method = first["primary_method"]
    seeds = list(config.seeds)
    tasks = {task: pool_task([r["tasks"][task] for r in per_seed], seeds, list(config.data.variants), method)
             for task in first["tasks"]}
    unit_seconds = sum(r["timings"]["total_unit_seconds"] for r in per_seed)
    return {
        **{k: first[k] for k in ("format", "base_fingerprint", "base_design", "versions", "primary_method")},
        "name": config.name, "digest": digest, "config": config.to_dict(),
        "seeds": {"seeds": seeds, "replicates": {str(s): f"seed-{s}" for s in seeds}},
        "timings": {"total_unit_seconds": round(unit_seconds, 2), "this_invocation_seconds": round(seconds, 2),
                    "by_seed": {str(s): r["timings"]["total_unit_seconds"] for s, r in zip(seeds, per_seed)}},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tasks": tasks,
    }
