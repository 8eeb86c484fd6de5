"""The report's findings are computed from the numbers: change the numbers, the verdicts follow."""

import copy

import pytest

from rhlens.tools.study import StudyConfig
from rhlens.tools.study.report import findings, report_markdown, task_tables

VARIANTS = ["fictional", "symbolic", "realistic-filler"]


def _entry(acc, recall, ko_retrieval, patched):
    """A task entry as collect_results builds it: accuracy per model, recall per model, the real
    model's knockout, and the patched intersection score of each non-real model."""
    models = ["real", "real-limited", *VARIANTS]
    heads = {"real": ["L1H0", "L1H1"]}
    comp = {m: {"n_heads": 2, "recall": recall[m], "precision": 1.0, "jaccard": recall[m], "cosine": 0.9,
                "shared": []} for m in models}
    others = models[1:]
    from rhlens.tools.study.analysis import pearson, spearman

    return {
        "data": {"sources": {"real_train": "generated"}},
        "models": {m: {"accuracy": acc[m], "train_set": m, "final_loss": 0.1,
                       "retrieval_heads": {"decode": heads.get(m, ["L1H0"])}} for m in models},
        "compare": {"methods": {"decode": {
            "reference_heads": heads["real"], "models": comp,
            "correlation": {"models": others, "spearman": spearman([recall[m] for m in others], [acc[m] for m in others]),
                            "pearson": pearson([recall[m] for m in others], [acc[m] for m in others])}}}},
        "knockout": {m: {"heads": ["L1H0"], "baseline": acc[m], "retrieval": ko_retrieval if m == "real" else acc[m] - 0.1,
                         "random": [acc[m], acc[m]], "random_heads": [["L0H0"], ["L0H1"]]} for m in models},
        "patching": {m: {"source_score": acc["real"], "rows": {
            "original": {"score": acc[m], "delta": 0.0, "heads": []},
            "intersection": {"score": patched[m], "delta": patched[m] - acc[m], "heads": ["L1H0"]},
            "complement": {"score": acc[m], "delta": 0.0, "heads": ["L1H1"]},
            "random (1, as intersection)": {"score": acc[m], "delta": 0.0, "heads": ["L0H3"], "draws": [acc[m]]},
            "random (1, as complement)": {"score": acc[m], "delta": 0.0, "heads": ["L0H4"], "draws": [acc[m]]}}}
            for m in others},
    }


CONFIG = StudyConfig.from_dict({"data": {"variants": VARIANTS}})
PAPERLIKE = _entry(
    acc={"real": 0.9, "real-limited": 0.7, "fictional": 0.6, "symbolic": 0.3, "realistic-filler": 0.8},
    recall={"real": 1.0, "real-limited": 0.9, "fictional": 0.7, "symbolic": 0.2, "realistic-filler": 1.0},
    ko_retrieval=0.2,
    patched={"real-limited": 0.8, "fictional": 0.7, "symbolic": 0.5, "realistic-filler": 0.85},
)


def _verdicts(entry):
    return {f["id"]: f["verdict"] for f in findings(entry, CONFIG, "decode")}


def test_paper_like_numbers_agree_everywhere():
    assert _verdicts(PAPERLIKE) == {"gap": "agrees", "overlap": "agrees", "correlation": "agrees",
                                    "knockout": "agrees", "patching": "agrees"}


@pytest.mark.parametrize("change, finding, verdict", [
    (lambda e: e["models"]["symbolic"].update(accuracy=0.95), "gap", "partly"),
    (lambda e: e["compare"]["methods"]["decode"]["correlation"].update(spearman=-0.4), "correlation", "disagrees"),
    (lambda e: e["compare"]["methods"]["decode"]["correlation"].update(spearman=None), "correlation", "undetermined"),
    (lambda e: e["knockout"]["real"].update(retrieval=0.95), "knockout", "partly"),
    (lambda e: [r["rows"]["intersection"].update(delta=0.0) for r in e["patching"].values()], "patching", "disagrees"),
    (lambda e: [e["compare"]["methods"]["decode"]["models"][v].update(precision=0.1) for v in VARIANTS], "overlap", "disagrees"),
])
def test_verdicts_follow_the_numbers(change, finding, verdict):
    entry = copy.deepcopy(PAPERLIKE)
    change(entry)
    assert _verdicts(entry)[finding] == verdict


def test_texts_quote_the_measured_numbers():
    texts = {f["id"]: f["text"] for f in findings(PAPERLIKE, CONFIG, "decode")}
    assert "0.90" in texts["gap"] and "3 of 3 synthetic models score lower" in texts["gap"]
    assert "0.90 -> 0.20" in texts["knockout"]


def test_markdown_has_every_table_and_finding():
    results = {"name": "t", "config": CONFIG.to_dict(), "primary_method": "decode", "digest": "abc",
               "tasks": {"mdqa": {**PAPERLIKE, "findings": findings(PAPERLIKE, CONFIG, "decode")}},
               "versions": {"torch": "x"}, "timings": {"total_unit_seconds": 1.0}, "seeds": {"seed": 0}}
    md = report_markdown(results)
    for title in ("### Models", "### Knockout", "### Patching", "agrees with the paper"):
        assert title in md
    tables = task_tables("mdqa", results["tasks"]["mdqa"], "decode")
    assert tables["patching"].count("\n") == 1 + 4  # header rule + one row per non-real model
