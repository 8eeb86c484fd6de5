"""The report's findings are computed from the numbers and their intervals: change the numbers, the
verdicts follow; effects within noise are not counted as agreeing."""

import copy

import pytest

from rhlens.tools.study.findings import RANDOM_COST, findings
from rhlens.tools.study.report import report_markdown, task_tables
from rhlens.tools.study.uncertainty import task_uncertainty

VARIANTS = ["fictional", "symbolic", "realistic-filler", "fictional-filler"]
N = 50


def _per(acc, n=N):
    k = round(acc * n)
    return [1.0] * k + [0.0] * (n - k)


def _entry(acc, recall, ko_retrieval, patched, random_ko=None):
    """A task entry as collect_results builds it (per-example values of N examples), then its
    uncertainty computed by rhlens."""
    models = ["real", "real-limited", *VARIANTS]
    heads = {"real": ["L1H0", "L1H1"]}
    comp = {m: {"n_heads": 2, "recall": recall[m], "precision": 1.0, "jaccard": recall[m], "cosine": 0.9, "shared": [],
                "recall_interval": {"estimate": recall[m], "low": max(0.0, recall[m] - 0.1), "high": min(1.0, recall[m] + 0.1),
                                    "n": N, "level": 0.95, "over": "examples"}} for m in models}
    others = models[1:]
    random_ko = random_ko or {}

    def ko(m):
        knocked = ko_retrieval if m == "real" else acc[m] - 0.3
        rnd = random_ko.get(m, acc[m])
        return {"heads": ["L1H0"], "baseline": acc[m], "retrieval": knocked, "random": [rnd, rnd],
                "random_heads": [["L0H0"], ["L0H1"]],
                "per_example": {"baseline": _per(acc[m]), "retrieval": _per(knocked), "random": [_per(rnd), _per(rnd)]}}

    def row(score, heads):
        return {"score": score, "delta": score, "heads": heads, "per_example": _per(score), "draws": [score]}

    entry = {
        "data": {"sources": {"real_train": "generated", "real_test": "generated"}},
        "models": {m: {"accuracy": acc[m], "per_example": _per(acc[m]), "train_set": m, "final_loss": 0.1, "metric": "substring",
                       "n_counted": {"decode": 40}, "n_scored": {"decode": N},
                       "retrieval_heads": {"decode": heads.get(m, ["L1H0"])}} for m in models},
        "compare": {"methods": {"decode": {"reference_heads": heads["real"], "models": comp,
                                           "correlation": {"models": others}}}},
        "knockout": {m: ko(m) for m in models},
        "patching": {m: {"source_score": acc["real"], "rows": {
            "original": row(acc[m], []), "intersection": row(patched[m], ["L1H0"]), "complement": row(acc[m], ["L1H1"]),
            "random (1, as intersection)": row(acc[m], ["L0H3"]), "random (1, as complement)": row(acc[m], ["L0H4"])}}
            for m in others},
    }
    entry["uncertainty"] = task_uncertainty([entry], method="decode")
    return entry


ACC = {"real": 0.9, "real-limited": 0.7, "fictional": 0.6, "symbolic": 0.3, "realistic-filler": 0.5, "fictional-filler": 0.4}
RECALL = {"real": 1.0, "real-limited": 0.9, "fictional": 0.7, "symbolic": 0.2, "realistic-filler": 0.6, "fictional-filler": 0.4}
PATCHED = {"real-limited": 0.86, "fictional": 0.8, "symbolic": 0.6, "realistic-filler": 0.76, "fictional-filler": 0.7}
PAPERLIKE = _entry(ACC, RECALL, 0.1, PATCHED)


def _verdicts(entry):
    entry = copy.deepcopy(entry)
    entry["uncertainty"] = task_uncertainty([entry], method="decode")
    return {f["id"]: f["verdict"] for f in findings(entry, VARIANTS, "decode")}


def test_paper_like_numbers_agree_everywhere():
    assert _verdicts(PAPERLIKE) == {"gap": "agrees", "overlap": "agrees", "correlation": "agrees",
                                    "knockout": "agrees", "patching": "agrees"}


def test_a_gap_within_noise_is_undetermined_not_agreement():
    # every synthetic model 0.02 below the real one on 50 examples: lower, but within noise
    acc = {**{m: 0.88 for m in ACC}, "real": 0.9}
    entry = _entry(acc, RECALL, 0.1, PATCHED)
    gap = next(f for f in findings(entry, VARIANTS, "decode") if f["id"] == "gap")
    assert gap["verdict"] == "undetermined" and set(gap["within_noise"]) == set(VARIANTS)


@pytest.mark.parametrize("change, finding, verdict", [
    (lambda e: e["models"]["symbolic"].update(per_example=_per(0.95)), "gap", "partly"),
    (lambda e: [e["compare"]["methods"]["decode"]["models"][m].update(
        recall_interval={"estimate": 1.0 - RECALL[m], "low": 0.0, "high": 1.0, "n": N}) for m in RECALL], "correlation", "disagrees"),
    (lambda e: [e["compare"]["methods"]["decode"]["models"][m].update(
        recall_interval={"estimate": 1.0, "low": 1.0, "high": 1.0, "n": N}) for m in RECALL], "correlation", "undetermined"),
    (lambda e: e["knockout"]["real"]["per_example"].update(retrieval=_per(0.9)), "knockout", "partly"),
    (lambda e: [r["rows"]["intersection"].update(per_example=r["rows"]["original"]["per_example"])
                for r in e["patching"].values()], "patching", "disagrees"),
    (lambda e: [e["compare"]["methods"]["decode"]["models"][v].update(precision=0.1) for v in VARIANTS], "overlap", "disagrees"),
])
def test_verdicts_follow_the_numbers(change, finding, verdict):
    entry = copy.deepcopy(PAPERLIKE)
    change(entry)
    assert _verdicts(entry)[finding] == verdict


def test_random_heads_that_cost_more_than_the_threshold_break_agreement():
    costly = _entry(ACC, RECALL, 0.1, PATCHED, random_ko={"fictional": ACC["fictional"] - RANDOM_COST - 0.1})
    ko = next(f for f in findings(costly, VARIANTS, "decode") if f["id"] == "knockout")
    assert ko["verdict"] == "partly" and "more in fictional" in ko["text"]


def test_correlation_with_four_points_cannot_reach_significance():
    # 4 models with perfectly ranked recall and accuracy: exact p = 2/24 > 0.05, so only "partly"
    entry = copy.deepcopy(PAPERLIKE)
    entry["compare"]["methods"]["decode"]["correlation"]["models"] = ["real-limited", "fictional", "symbolic", "realistic-filler"]
    corr = next(f for f in findings({**entry, "uncertainty": task_uncertainty([entry], method="decode")}, VARIANTS, "decode")
                if f["id"] == "correlation")
    assert corr["verdict"] == "partly" and corr["within_noise"] and "p = 0.083" in corr["text"]


def test_patching_notes_overshoot_and_empty_rows():
    entry = copy.deepcopy(PAPERLIKE)
    rows = entry["patching"]["fictional"]["rows"]
    rows["intersection"].update(score=0.95, per_example=_per(0.95))
    rows["complement"].update(heads=[])
    entry["uncertainty"] = task_uncertainty([entry], method="decode")
    text = next(f for f in findings(entry, VARIANTS, "decode") if f["id"] == "patching")["text"]
    assert "intersection reaches or passes the real model" in text and "complement has 0 heads" in text
    table = task_tables("mdqa", entry, "decode")["patching"]
    assert "overshoot" in table and "0 heads, nothing patched" in table


def test_texts_and_tables_quote_the_measured_numbers_with_intervals():
    texts = {f["id"]: f["text"] for f in findings(PAPERLIKE, VARIANTS, "decode")}
    assert "0.90 [" in texts["gap"] and "4 of 4 synthetic models score clearly lower" in texts["gap"]
    assert "retrieval heads out -0.80 [" in texts["knockout"]
    tables = task_tables("mdqa", PAPERLIKE, "decode")
    assert "accuracy [95% CI]" in tables["models"] and "0.90 [" in tables["models"]


def test_report_opens_with_a_summary_and_names_metric_counts_and_caveat():
    from rhlens.tools.study import StudyConfig

    cfg = StudyConfig.from_dict({"data": {"variants": VARIANTS}})
    entry = copy.deepcopy(PAPERLIKE)
    entry["findings"] = findings(entry, VARIANTS, "decode")
    results = {"name": "t", "config": cfg.to_dict(), "primary_method": "decode", "digest": "d", "seeds": {"seeds": [0]},
               "base_design": {"engineered_retrieval_heads": ["L1H0"], "card": "CARD.md"},
               "versions": {"rhlens": "x"}, "timings": {"total_unit_seconds": 1.0}, "tasks": {"mdqa": entry}}
    md = report_markdown(results)
    assert md.index("## Summary") < md.index("## mdqa")
    assert "Metric: substring on 50 real test examples" in md and "real-limited 40" in md
    assert "engineered" in md and "L1H0" in md and "bootstrap 95% intervals" in md
    assert "its figure: MDQA: real-data model 0.83" in md  # the paper's figure beside the miniature's


def test_replicates_pool_over_seeds_and_keep_each_seed():
    from rhlens.tools.study import StudyConfig
    from rhlens.tools.study.replicates import pool_results

    other = _entry({**ACC, "symbolic": 0.5}, {**RECALL, "symbolic": 0.4}, 0.1, PATCHED)
    for e in (PAPERLIKE, other):
        for info in e["models"].values():
            info["scores"] = {"decode": [[0.5, 0.0]]}
    other["models"]["symbolic"]["retrieval_heads"] = {"decode": ["L3H2", "L2H0"]}
    other["models"]["symbolic"]["n_counted"] = {"decode": 7}
    cfg = StudyConfig.from_dict({"seeds": [0, 1], "data": {"variants": VARIANTS}})
    per_seed = [{"format": "f", "base_fingerprint": {}, "base_design": None, "versions": {}, "primary_method": "decode",
                 "timings": {"total_unit_seconds": 10.0}, "tasks": {"mdqa": copy.deepcopy(e)}} for e in (PAPERLIKE, other)]
    pooled = pool_results(per_seed, cfg, digest="d", seconds=1.0)
    task = pooled["tasks"]["mdqa"]
    sym = task["uncertainty"]["models"]["symbolic"]
    assert sym["accuracy"]["over"] == "seeds x examples" and sym["accuracy"]["estimate"] == pytest.approx(0.4)
    assert sym["recall"]["over"] == "seeds" and sym["recall"]["per_seed"] == [0.2, 0.4]
    assert task["models"]["symbolic"]["accuracy"] == pytest.approx(0.4)
    assert task["by_seed"]["1"]["symbolic"]["accuracy"] == 0.5 and pooled["timings"]["total_unit_seconds"] == 20.0
    assert [f["id"] for f in task["findings"]] == ["gap", "overlap", "correlation", "knockout", "patching"]
    # the correlation over every (seed, model) point, permuted within seeds, decides the verdict
    reps = task["uncertainty"]["correlation_replicates"]
    assert reps["spearman"]["n"] == 2 * len(task["uncertainty"]["correlation"]["models"]) and reps["spearman"]["stratified"]
    corr = next(f for f in task["findings"] if f["id"] == "correlation")
    assert "(seed, model) point" in corr["text"] and f"p = {reps['spearman']['p_value']:.3f}" in corr["text"]
    md = report_markdown(pooled)
    assert "seeds [0, 1]" in md
    # the models table lists each seed's heads, and the gate counts are each seed's
    sym_row = next(line for line in md.splitlines() if line.startswith("| symbolic |"))
    assert f"s0: {' '.join(PAPERLIKE['models']['symbolic']['retrieval_heads']['decode'])}; s1: L3H2 L2H0" in sym_row
    assert "symbolic 40/7" in md
