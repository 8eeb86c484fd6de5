"""The study's outputs: ``results.json`` (every number), ``report.md`` and ``report.html``.

Each finding of the paper is restated with the measured numbers and a verdict computed from them
(``agrees``, ``partly``, ``disagrees`` or ``undetermined``) by the rule stated next to it; nothing
here is a fixed conclusion.

>>> verdict_from(3, 3), verdict_from(1, 3), verdict_from(0, 3), verdict_from(0, 0)
('agrees', 'partly', 'disagrees', 'undetermined')
"""

import html
import json
import time
from pathlib import Path
from typing import Any

from rhlens.files import write_json_atomic, write_text_atomic
from rhlens.tools.study.config import StudyConfig
from rhlens.tools.study.detectors import detectors_figure, detectors_markdown
from rhlens.tools.study.folder import RunFolder
from rhlens.tools.study.layout import Layout

REAL, LIMITED = "real", "real-limited"
FORMAT = "rhlens-study-results/1"


def verdict_from(hits: int, total: int) -> str:
    """``agrees`` when all of ``total`` cases match the paper, ``partly`` when some, else
    ``disagrees``; ``undetermined`` with no case."""
    if total == 0:
        return "undetermined"
    return "agrees" if hits == total else ("partly" if hits else "disagrees")


def _f(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _random_rows(rows: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: row for name, row in rows.items() if name.startswith("random")}


# ---- results.json ---------------------------------------------------------------------------------
def collect_results(folder: RunFolder, config: StudyConfig, *, versions: dict[str, str], seconds: float,
                    digest: str, base: dict[str, str]) -> dict[str, Any]:
    """Gather every unit record of the run folder into one results dict, with the findings."""
    timings: dict[str, float] = {}
    tasks: dict[str, Any] = {}
    primary = config.scores.methods[0]
    for task in config.tasks:
        models = config.model_names(task)
        data = folder.read(Layout.record("data", task, None))
        timings[f"{task}/data"] = data.get("seconds", 0.0)
        per_model: dict[str, Any] = {}
        for m in models:
            ft = folder.read(Layout.record("finetune", task, m))
            ev = folder.read(Layout.record("evaluate", task, m))
            sc = folder.read(Layout.record("scores", task, m))
            for stage, rec in (("finetune", ft), ("evaluate", ev), ("scores", sc)):
                timings[f"{task}/{stage}/{m}"] = rec.get("seconds", 0.0)
            per_model[m] = {
                "train_set": ft["train_set"], "n_train": ft["n_examples"], "steps": ft["steps"],
                "final_loss": _mean(ft["loss_curve"][-10:]), "loss_curve": ft["loss_curve"], "accuracy": ev["accuracy"],
                "metric": ev["metric"], "predictions": ev["predictions"], "per_example": ev["per_example"],
                "scores": {meth: r["scores"] for meth, r in sc["methods"].items()},
                "retrieval_heads": {meth: r["retrieval_heads"] for meth, r in sc["methods"].items()},
                "n_above_threshold": {meth: r["n_above_threshold"] for meth, r in sc["methods"].items()},
                "n_counted": {meth: r["n_counted"] for meth, r in sc["methods"].items()},
                "score_files": {meth: r["files"] for meth, r in sc["methods"].items()},
            }
        compare = folder.read(Layout.record("compare", task, None))
        timings[f"{task}/compare"] = compare.get("seconds", 0.0)
        knockout = {m: folder.read(Layout.record("knockout", task, m)) for m in models}
        patching = {m: folder.read(Layout.record("patching", task, m)) for m in models if m != REAL}
        for m, rec in knockout.items():
            timings[f"{task}/knockout/{m}"] = rec.get("seconds", 0.0)
        for m, rec in patching.items():
            timings[f"{task}/patching/{m}"] = rec.get("seconds", 0.0)
        entry = {"data": data, "models": per_model, "compare": compare, "knockout": knockout, "patching": patching}
        if config.scores.detectors:
            entry["detectors"] = folder.read(Layout.record("detectors", task, REAL))
        entry["findings"] = findings(entry, config, primary)
        tasks[task] = entry
    return {
        "format": FORMAT,
        "name": config.name,
        "digest": digest,
        "base_fingerprint": base,
        "config": config.to_dict(),
        "seeds": {"seed": config.seed, "data": {t: tasks[t]["data"].get("seeds") for t in tasks},
                  "random_heads": [config.seed + i for i in range(max(config.knockout.n_random, config.patching.n_random))]},
        "versions": versions,
        "timings": {"units": timings, "total_unit_seconds": round(sum(timings.values()), 2),
                    "this_invocation_seconds": round(seconds, 2)},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "primary_method": primary,
        "tasks": tasks,
    }


# ---- findings -----------------------------------------------------------------------------------
def _finding_gap(acc: dict[str, float], variants: list[str]) -> dict[str, Any]:
    """Finding 1. The real vs synthetic gap."""
    below = [v for v in variants if acc[v] < acc[REAL]]
    best = max(variants, key=lambda v: acc[v])
    gap = _mean([acc[REAL] - acc[v] for v in variants])
    return {
        "id": "gap", "title": "Synthetic data falls short of real data",
        "paper": "every synthetic training set scores below the real one on the real task",
        "rule": "agrees when every synthetic model scores below the real-data model, partly when some do",
        "verdict": verdict_from(len(below), len(variants)),
        "text": (f"The real-data model scores {acc[REAL]:.2f} and the limited real subset {acc[LIMITED]:.2f}; "
                 f"{len(below)} of {len(variants)} synthetic models score lower (mean gap {gap:+.2f}; best synthetic "
                 f"{best} at {acc[best]:.2f})."),
    }


def _finding_overlap(compare: dict[str, Any], variants: list[str]) -> dict[str, Any]:
    """Finding 2. Head counts, and whether synthetic models' heads are subsets of the real model's."""
    ref = compare["reference_heads"]
    with_heads = [v for v in variants if compare["models"][v]["n_heads"]]
    prec = [compare["models"][v]["precision"] for v in with_heads if compare["models"][v]["precision"] is not None]
    rec = [compare["models"][v]["recall"] for v in variants if compare["models"][v]["recall"] is not None]
    cos = [compare["models"][v]["cosine"] for v in variants if compare["models"][v]["cosine"] is not None]
    mostly_subsets = [p for p in prec if p >= 0.5]
    counts = ", ".join(f"{v} {compare['models'][v]['n_heads']}" for v in variants)
    return {
        "id": "overlap", "title": "Synthetic models' retrieval heads overlap the real model's",
        "paper": "retrieval heads learned on synthetic data overlap highly with (are mostly subsets of) the real-data heads",
        "rule": "agrees when, in every synthetic model with retrieval heads, at least half of them are also the real model's",
        "verdict": verdict_from(len(mostly_subsets), len(prec)) if ref else "undetermined",
        "text": (f"The real-data model has {len(ref)} retrieval heads ({' '.join(ref) or 'none'}); the synthetic models have "
                 f"{counts}. Mean recall of the real heads {_f(_mean(rec))}, mean share of a synthetic model's heads that "
                 f"are real heads {_f(_mean(prec))} ({len(mostly_subsets)} of {len(prec)} models at least 0.5); mean cosine "
                 f"similarity of score maps {_f(_mean(cos))}."),
    }


def _finding_correlation(compare: dict[str, Any]) -> dict[str, Any]:
    """Finding 3. Whether recall of the real model's heads predicts accuracy."""
    corr = compare["correlation"]
    rho, r = corr["spearman"], corr["pearson"]
    verdict = "undetermined" if rho is None else ("agrees" if rho > 0.5 else ("partly" if rho > 0 else "disagrees"))
    return {
        "id": "correlation", "title": "Recall of the real model's heads predicts accuracy",
        "paper": "strong positive correlation between retrieval-head recall and downstream accuracy across variants",
        "rule": "agrees when Spearman's rho > 0.5, partly when 0 < rho <= 0.5, disagrees when rho <= 0",
        "verdict": verdict,
        "text": (f"Across the {len(corr['models'])} non-real models, Spearman's rho = {_f(rho)} and Pearson's r = {_f(r)}"
                 + (" (undefined: fewer than 3 models, or recall or accuracy did not vary)." if rho is None else ".")),
    }


def _finding_knockout(ko: dict[str, Any]) -> dict[str, Any]:
    """Finding 4. Retrieval-head knockout against random heads."""
    tested = {m: k for m, k in ko.items() if k.get("retrieval") is not None}
    hurts = [m for m, k in tested.items() if k["retrieval"] < min(k["baseline"], _mean(k["random"]))]
    real_ko = ko[REAL]
    real_txt = (f"For the real-data model, knocking out its {len(real_ko['heads'])} retrieval heads moves accuracy "
                f"{real_ko['baseline']:.2f} -> {real_ko['retrieval']:.2f}; as many random heads -> "
                f"{_mean(real_ko['random']):.2f} (mean of {len(real_ko['random'])} draws). "
                if real_ko.get("retrieval") is not None else "The real-data model has no retrieval head to knock out. ")
    return {
        "id": "knockout", "title": "Knocking out retrieval heads hurts more than random heads",
        "paper": "knocking out the top retrieval heads drops performance sharply; as many random heads barely matter",
        "rule": "agrees when, in every model with retrieval heads, knocking them out lowers the score below both the "
                "intact score and the random draws' mean",
        "verdict": verdict_from(len(hurts), len(tested)),
        "text": real_txt + f"Over all models, the retrieval knockout hurts more than random in {len(hurts)} of {len(tested)}.",
    }


def _finding_patching(pt: dict[str, Any]) -> dict[str, Any]:
    """Finding 5. Patching the real model's heads into the others."""
    lines, recovered, cases = [], 0, 0
    for m, rec in pt.items():
        rows = rec.get("rows") or {}
        if not rows:
            continue
        original = rows["original"]["score"]
        head_delta = max(rows["intersection"]["delta"], rows["complement"]["delta"])
        rand_delta = max(r["delta"] for r in _random_rows(rows).values())
        gap_m = rec["source_score"] - original
        if gap_m > 0:
            cases += 1
            recovered += int(head_delta > rand_delta and head_delta > 0)
        lines.append(f"{m}: {original:.2f} (real {rec['source_score']:.2f}); intersection {rows['intersection']['delta']:+.2f}, "
                     f"complement {rows['complement']['delta']:+.2f}, best random {rand_delta:+.2f}")
    return {
        "id": "patching", "title": "Patching the real model's heads recovers part of the gap",
        "paper": "patching the real-data model's retrieval-head outputs into a synthetic model recovers part of its gap, "
                 "more than random heads (necessary, not fully sufficient)",
        "rule": "agrees when, in every model that trails the real model, patching the intersection or complement gains "
                "more than any random row and more than 0",
        "verdict": verdict_from(recovered, cases),
        "text": (f"In {recovered} of {cases} models that trail the real model, patching its retrieval heads gains more "
                 f"than random heads. " + ("; ".join(lines) + "." if lines else "No model could be patched.")),
    }


def findings(entry: dict[str, Any], config: StudyConfig, method: str) -> list[dict[str, Any]]:
    """The paper's five findings, each with the measured numbers and a computed verdict."""
    models, compare = entry["models"], entry["compare"]["methods"][method]
    variants = list(config.data.variants)
    acc = {m: models[m]["accuracy"] for m in models}
    return [
        _finding_gap(acc, variants),
        _finding_overlap(compare, variants),
        _finding_correlation(compare),
        _finding_knockout(entry["knockout"]),
        _finding_patching(entry["patching"]),
    ]


# ---- report.md ----------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _patching_columns(rec: dict[str, Any]) -> dict[str, Any]:
    """One target's patching row with fixed column names (random rows' sizes in their own columns)."""
    rows = rec["rows"]
    rand = _random_rows(rows)
    ri = next((r for n, r in rand.items() if n.endswith("as intersection)")), None)
    rc = next((r for n, r in rand.items() if n.endswith("as complement)")), None)
    return {
        "original": rows["original"]["score"], "intersection": rows["intersection"]["score"],
        "complement": rows["complement"]["score"], "random (as intersection)": ri and ri["score"],
        "random (as complement)": rc and rc["score"], "real model": rec["source_score"],
        "n intersection": len(rows["intersection"]["heads"]), "n complement": len(rows["complement"]["heads"]),
    }


def task_tables(task: str, entry: dict[str, Any], method: str) -> dict[str, str]:
    """The Markdown tables of one task: models, knockout, patching."""
    models, compare = entry["models"], entry["compare"]["methods"][method]
    model_rows = []
    for m, info in models.items():
        c = compare["models"][m]
        model_rows.append([m, info["train_set"], info["accuracy"], info["final_loss"], c["n_heads"],
                           " ".join(info["retrieval_heads"][method]) or "-", c["recall"], c["precision"], c["cosine"]])
    ko_rows = []
    for m, k in entry["knockout"].items():
        if k.get("retrieval") is None:
            ko_rows.append([m, 0, None, None, None, k.get("skipped", "")])
            continue
        ko_rows.append([m, len(k["heads"]), k["baseline"], k["retrieval"], _mean(k["random"]),
                        " / ".join(f"{x:.2f}" for x in k["random"])])
    pt_rows = []
    for m, rec in entry["patching"].items():
        rows = rec.get("rows") or {}
        if not rows:
            pt_rows.append([m, None, None, None, None, None, rec.get("skipped", "")])
            continue
        c = _patching_columns(rec)
        pt_rows.append([m, c["original"], f"{c['intersection']:.2f} ({c['n intersection']})",
                        f"{c['complement']:.2f} ({c['n complement']})", c["random (as intersection)"],
                        c["random (as complement)"], c["real model"]])
    return {
        "models": _table(["model", "training set", "accuracy", "loss (last 10 steps)", "retrieval heads", "heads",
                          "recall of real heads", "share in real heads", "cosine to real"], model_rows),
        "knockout": _table(["model", "heads knocked out", "intact", "retrieval heads out", "random heads out (mean)",
                            "random draws"], ko_rows),
        "patching": _table(["target", "original", "intersection (heads)", "complement (heads)", "random (as intersection)",
                            "random (as complement)", "real model"], pt_rows),
    }


def report_markdown(results: dict[str, Any]) -> str:
    """``report.md``: what ran, the tables, and the findings in plain language."""
    cfg, method = results["config"], results["primary_method"]
    d, ft = cfg["data"], cfg["finetune"]
    base = cfg["model"]["base"]
    parts = [
        f"# rhlens study: {results['name']}",
        "",
        (f"Base model: {'the embedded base' if base == 'embedded' else base}. Each training set fine-tunes a copy of it "
         f"({ft['trainable']} parameters, {ft['steps']} steps of batch {ft['batch_size']}, lr {ft['lr']}) at "
         f"{d['context_tokens']} tokens per example; every model is then evaluated on the same real test set "
         f"({d['n_test']} examples). Retrieval heads: scores above {cfg['scores']['threshold']} "
         f"({method} method), at most {cfg['scores']['top_k']} per model. Run digest (config and base) {results['digest']}; "
         "every number is in results.json."),
    ]
    marks = {"agrees": "agrees with the paper", "partly": "partly agrees with the paper",
             "disagrees": "disagrees with the paper", "undetermined": "cannot be decided from these numbers"}
    for task, entry in results["tasks"].items():
        tables = task_tables(task, entry, method)
        parts += ["", f"## {task}", "", f"Real data: {entry['data']['sources']['real_train']}.", "",
                  "### Models", "", tables["models"], "",
                  f"Correlation of recall with accuracy across the non-real models: Spearman "
                  f"{_f(entry['compare']['methods'][method]['correlation']['spearman'])}, Pearson "
                  f"{_f(entry['compare']['methods'][method]['correlation']['pearson'])}.",
                  "", "### Knockout", "", tables["knockout"], "", "### Patching (real-data model into each model)", "",
                  tables["patching"], "", "### Findings", ""]
        if entry.get("detectors"):
            parts[-2:-2] = ["### Head detectors on the real-data model", "", detectors_markdown(entry["detectors"]), ""]
        for f in entry["findings"]:
            parts.append(f"- **{f['title']}**: the miniature {marks[f['verdict']]}. {f['text']} "
                         f"(Paper: {f['paper']}. Verdict rule: {f['rule']}.)")
    v = results["versions"]
    parts += ["", "## Run", "",
              f"Total unit time {results['timings']['total_unit_seconds']:.0f} s; seed {results['seeds']['seed']}; "
              + ", ".join(f"{k} {val}" for k, val in v.items()) + "."]
    return "\n".join(parts) + "\n"


# ---- report.html ------------------------------------------------------------------------------
def _md_table_html(md: str) -> str:
    rows = [line.strip("|").split(" | ") for line in md.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in r)  # noqa: E731
    return ("<table border='1' cellpadding='4' style='border-collapse:collapse'><tr>" + cells(head, "th") + "</tr>"
            + "".join("<tr>" + cells(r, "td") + "</tr>" for r in body) + "</table>")


def report_html(results: dict[str, Any], path: Path) -> None:
    """``report.html``: heatmaps on one scale, recall vs accuracy, knockout bars, the patching table."""
    import torch

    from rhlens import plot

    method = results["primary_method"]
    figures: list[tuple[str, Any]] = []
    for task, entry in results["tasks"].items():
        models = entry["models"]
        maps = {m: torch.tensor(info["scores"][method]) for m, info in models.items()}
        zmax = max(float(t.max()) for t in maps.values()) or 1.0
        names = list(maps)
        for i in range(0, len(names), 3):  # three models a row, every row on the same colour scale
            figures.append((f"{task}: retrieval scores ({method}, 0 to {zmax:.2f} on every map)" if i == 0
                            else f"{task}: retrieval scores (continued)",
                            plot.compare_heatmaps({m: maps[m] for m in names[i:i + 3]}, zmin=0.0, zmax=zmax,
                                                  title=f"{task}: retrieval score per head")))
        comp = entry["compare"]["methods"][method]
        others = [m for m in comp["correlation"]["models"] if comp["models"][m]["recall"] is not None]
        if others:
            figures.append((f"{task}: recall of the real model's heads vs accuracy", plot.recall_vs_performance(
                {m: comp["models"][m]["recall"] for m in others}, {m: models[m]["accuracy"] for m in others},
                title=f"{task}: recall vs accuracy")))
        effects = {m: {"baseline": k["baseline"], "retrieval": k["retrieval"], "random": k["random"]}
                   for m, k in entry["knockout"].items() if k.get("retrieval") is not None}
        if effects:
            figures.append((f"{task}: knockout", plot.knockout_bars(effects, title=f"{task}: retrieval vs random heads knocked out")))
        rows = {m: _patching_columns(rec) for m, rec in entry["patching"].items() if rec.get("rows")}
        if rows:
            figures.append((f"{task}: patching", plot.patching_table(rows, title=f"{task}: real-data heads patched in (accuracy)")))
        if entry.get("detectors"):
            figures.append((f"{task}: head detectors", detectors_figure(task, entry["detectors"])))
        tables = task_tables(task, entry, method)
        figures.append((f"{task}: tables", _md_table_html(tables["models"]) + "<br>" + _md_table_html(tables["knockout"])))
        items = "".join(f"<li><b>{html.escape(f['title'])}</b> ({html.escape(f['verdict'])}): {html.escape(f['text'])} "
                        f"<i>Paper: {html.escape(f['paper'])}. Rule: {html.escape(f['rule'])}.</i></li>"
                        for f in entry["findings"])
        figures.append((f"{task}: findings", f"<ul>{items}</ul>"))
    cfg = results["config"]
    intro = (f"Study {results['name']!r} (run digest {results['digest']}): base {cfg['model']['base']}, tasks "
             f"{', '.join(results['tasks'])}, {cfg['data']['context_tokens']} tokens per example. Every number is in "
             "results.json; report.md has the same tables and findings.")
    plot.write_html(figures, path, title=f"rhlens study: {results['name']}", intro=intro)


def write_reports(out: Path, results: dict[str, Any]) -> None:
    """Write ``results.json``, ``report.md`` and ``report.html`` into ``out`` (atomically)."""
    md, page = Layout.REPORTS
    write_json_atomic(out / Layout.RESULTS, results)
    write_text_atomic(out / md, report_markdown(results))
    report_html(json.loads(json.dumps(results)), out / page)
