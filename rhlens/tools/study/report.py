"""The study's outputs: ``results.json`` (every number), ``report.md`` and ``report.html``.

Both reports open with a summary (each finding's verdict and its key number with a 95% interval),
say what was measured (the metric, how many examples each number counts, what the "real" set is),
then give the charts and tables, the findings in full (:mod:`rhlens.tools.study.findings`) and
the run (versions, time). The HTML page says what ``report.md`` says, with the figures.
"""

import html
import json
import time
from pathlib import Path
from typing import Any

from rhlens.files import write_json_atomic, write_text_atomic
from rhlens.tools.study.config import StudyConfig
from rhlens.tools.study.detectors import detectors_figure, detectors_markdown
from rhlens.tools.study.findings import findings, iv_text, verdict_from  # noqa: F401  (verdict_from: re-exported)
from rhlens.tools.study.folder import RunFolder
from rhlens.tools.study.layout import Layout
from rhlens.tools.study.uncertainty import task_uncertainty

REAL, LIMITED = "real", "real-limited"
FORMAT = "rhlens-study-results/2"
MARKS = {"agrees": "agrees with the paper", "partly": "partly agrees with the paper",
         "disagrees": "disagrees with the paper", "undetermined": "cannot be decided from these numbers"}


def _f(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def base_design(config: StudyConfig) -> dict[str, Any] | None:
    """What the embedded base's card says about its engineered heads (``None`` for another base)."""
    return embedded_base_design() if config.model.base == "embedded" else None


def embedded_base_design() -> dict[str, Any]:
    """The embedded base's engineered retrieval heads (its recipe's supervised heads) and its card."""
    from rhlens.models.base import base_dir

    recipe = json.loads((base_dir() / "recipe.json").read_text(encoding="utf-8"))
    sup = [s["supervision"] for s in recipe.get("stages", []) if s.get("supervision")]
    heads = sorted({h for s in sup for h in s.get("retrieval_heads", [])})
    return {"engineered_retrieval_heads": heads, "card": "rhlens/assets/base/CARD.md"}


# ---- results.json ---------------------------------------------------------------------------------
def _model_record(folder: RunFolder, task: str, m: str, timings: dict[str, float]) -> dict[str, Any]:
    ft = folder.read(Layout.record("finetune", task, m))
    ev = folder.read(Layout.record("evaluate", task, m))
    sc = folder.read(Layout.record("scores", task, m))
    for stage, rec in (("finetune", ft), ("evaluate", ev), ("scores", sc)):
        timings[f"{task}/{stage}/{m}"] = rec.get("seconds", 0.0)
    return {
        "train_set": ft["train_set"], "n_train": ft["n_examples"], "steps": ft["steps"],
        "final_loss": _mean(ft["loss_curve"][-10:]), "loss_curve": ft["loss_curve"], "accuracy": ev["accuracy"],
        "metric": ev["metric"], "predictions": ev["predictions"], "per_example": ev["per_example"],
        "scores": {meth: r["scores"] for meth, r in sc["methods"].items()},
        "retrieval_heads": {meth: r["retrieval_heads"] for meth, r in sc["methods"].items()},
        "n_above_threshold": {meth: r["n_above_threshold"] for meth, r in sc["methods"].items()},
        "n_counted": {meth: r["n_counted"] for meth, r in sc["methods"].items()},
        "n_scored": {meth: r["n_examples"] for meth, r in sc["methods"].items()},
        "score_files": {meth: r["files"] for meth, r in sc["methods"].items()},
    }


def collect_results(folder: RunFolder, config: StudyConfig, *, versions: dict[str, str], seconds: float,
                    digest: str, base: dict[str, str]) -> dict[str, Any]:
    """Gather every unit record of the run folder into one results dict, with intervals and findings."""
    timings: dict[str, float] = {}
    tasks: dict[str, Any] = {}
    primary = config.scores.methods[0]
    for task in config.tasks:
        models = config.model_names(task)
        data = folder.read(Layout.record("data", task, None))
        timings[f"{task}/data"] = data.get("seconds", 0.0)
        per_model = {m: _model_record(folder, task, m, timings) for m in models}
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
        entry["uncertainty"] = task_uncertainty([entry], method=primary, seed=config.seed)
        entry["findings"] = findings(entry, list(config.data.variants), primary)
        tasks[task] = entry
    return {
        "format": FORMAT,
        "name": config.name,
        "digest": digest,
        "base_fingerprint": base,
        "base_design": base_design(config),
        "config": config.to_dict(),
        "seeds": {"seeds": list(config.seeds), "data": {t: tasks[t]["data"].get("seeds") for t in tasks},
                  "random_heads": [config.seed + i for i in range(max(config.knockout.n_random, config.patching.n_random))]},
        "versions": versions,
        "timings": {"units": timings, "total_unit_seconds": round(sum(timings.values()), 2),
                    "this_invocation_seconds": round(seconds, 2)},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "primary_method": primary,
        "tasks": tasks,
    }


# ---- tables -------------------------------------------------------------------------------------
def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_f(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _n_heads(counts: list[int]) -> str:
    return str(counts[0]) if len(set(counts)) == 1 else "/".join(map(str, counts))


def _heads_cells(entry: dict[str, Any], model: str, method: str) -> tuple[str, str]:
    """The "n retrieval heads" and "heads" cells: one seed's list, or each seed's (``s0: ...; s1: ...``).

    >>> e = {"models": {"m": {"retrieval_heads": {"decode": ["L1H0"]}}}}
    >>> _heads_cells(e, "m", "decode")
    ('1', 'L1H0')
    >>> e["by_seed"] = {"0": {"m": {"retrieval_heads": ["L1H0"]}}, "1": {"m": {"retrieval_heads": ["L1H0", "L2H0"]}}}
    >>> _heads_cells(e, "m", "decode")
    ('1/2', 's0: L1H0; s1: L1H0 L2H0')
    """
    by_seed = entry.get("by_seed")
    if not by_seed or len(by_seed) < 2:
        heads = entry["models"][model]["retrieval_heads"][method]
        return str(len(heads)), " ".join(heads) or "-"
    lists = {s: rec[model]["retrieval_heads"] for s, rec in by_seed.items()}
    return (_n_heads([len(h) for h in lists.values()]),
            "; ".join(f"s{s}: {' '.join(h) or '-'}" for s, h in lists.items()))


def task_tables(task: str, entry: dict[str, Any], method: str) -> dict[str, str]:
    """The Markdown tables of one task (models, knockout, patching), every number with its interval."""
    models, compare, unc = entry["models"], entry["compare"]["methods"][method], entry["uncertainty"]["models"]
    model_rows = []
    for m, info in models.items():
        c, u = compare["models"][m], unc[m]
        n_heads, heads = _heads_cells(entry, m, method)
        model_rows.append([m, info["train_set"], iv_text(u["accuracy"]), iv_text(u["gap"], True) if u["gap"] else "-",
                           n_heads, heads, iv_text(u["recall"]),
                           c["precision"], c["cosine"]])
    ko_rows = []
    for m, k in entry["knockout"].items():
        u = unc[m]["knockout"]
        if k.get("retrieval") is None or u is None:
            ko_rows.append([m, 0, iv_text(unc[m]["accuracy"]), "-", "-", "-", k.get("skipped", "no per-example values")])
            continue
        ko_rows.append([m, _n_heads(u["n_heads"]), iv_text(unc[m]["accuracy"]), iv_text(u["retrieval_delta"], True),
                        iv_text(u["random_delta"], True), iv_text(u["retrieval_minus_random"], True),
                        " / ".join(f"{x:.2f}" for x in k["random"])])
    pt_rows = []
    for m, rec in entry["patching"].items():
        u = unc[m]["patching"]
        if not rec.get("rows") or not u:
            pt_rows.append([m, None, None, None, None, None, None, rec.get("skipped", "no per-example values")])
            continue
        cells = [f"{iv_text(u[k]['delta'], True)} ({_n_heads(u[k]['n_heads'])})" if k in u else "-"
                 for k in ("intersection", "complement", "random (as intersection)", "random (as complement)")]
        notes = [f"{k}: 0 heads, nothing patched" for k in ("intersection", "complement") if k in u and not max(u[k]["n_heads"])]
        trails = rec["rows"]["original"]["score"] < rec["source_score"]
        over = [k for k in ("intersection", "complement")
                if trails and rec["rows"][k]["heads"] and rec["rows"][k]["score"] >= rec["source_score"]]
        notes += [f"{k} reaches the real model (overshoot)" for k in over]
        pt_rows.append([m, rec["rows"]["original"]["score"], *cells, rec["source_score"], "; ".join(notes) or "-"])
    return {
        "models": _table(["model", "training set", "accuracy [95% CI]", "minus real [95% CI]", "n retrieval heads", "heads",
                          "recall of real heads [95% CI]", "share in real heads", "cosine to real"], model_rows),
        "knockout": _table(["model", "heads out", "intact [95% CI]", "change, retrieval heads out", "change, random heads out",
                            "retrieval minus random", "random draws"], ko_rows),
        "patching": _table(["target", "original", "intersection: change (heads)", "complement: change (heads)",
                            "random as intersection", "random as complement", "real model", "notes"], pt_rows),
    }


# ---- what was measured, the summary -------------------------------------------------------------
def measured(results: dict[str, Any], task: str, entry: dict[str, Any]) -> list[str]:
    """Paragraphs: the real set, the metric and the counts behind every number, the seeds."""
    cfg, method = results["config"], results["primary_method"]
    models = entry["models"]
    first = next(iter(models.values()))
    metric = metric_name(task, first["metric"])
    by_seed = entry.get("by_seed") or {}
    counted = ", ".join(f"{m} {'/'.join(str(rec[m]['n_counted']) for rec in by_seed.values() if 'n_counted' in rec[m])}"
                        if len(by_seed) > 1 else f"{m} {info['n_counted'][method]}" for m, info in models.items())
    n_seeds = entry["uncertainty"]["n_seeds"]
    over = "test examples" if n_seeds == 1 else f"{n_seeds} seeds and, within each, test examples"
    return [
        f"Real data: {entry['data']['sources']['real_train']} (test set: {entry['data']['sources']['real_test']})"
        + (". With no real files, the 'real' set is this generated variant; every synthetic set is another variant."
           if not cfg["data"]["real_files"] else "."),
        f"Metric: {metric} on {cfg['data']['n_test']} real test examples per model (accuracy); retrieval scores "
        f"on {cfg['scores']['n_examples']} of them ({method} method), of which each model's scores count those that pass "
        f"the ROUGE gate: {counted}; knockout on {cfg['knockout']['n_examples']} examples with {cfg['knockout']['n_random']} "
        f"random draws; patching on {cfg['patching']['n_examples']} examples with {cfg['patching']['n_random']} draws.",
        f"Intervals: bootstrap 95% intervals (2000 resamples) over {over}; a change whose interval holds 0 is within "
        "noise. Correlations: permutation p-values (exact for up to 7 models) and bootstrap intervals over models.",
    ]


def metric_name(task: str, recorded: str) -> str:
    """The metric in words: the task's default metric named, or the recorded name."""
    if recorded != "task default":
        return recorded
    from rhlens.tasks.metrics import default_metric_name

    return f"{default_metric_name(task)} (the {task} default)"


def caveat(results: dict[str, Any]) -> str | None:
    """The engineered-heads caveat of the embedded base."""
    design = results.get("base_design")
    if not design:
        return None
    heads = ", ".join(design["engineered_retrieval_heads"])
    return (f"The embedded base's retrieval heads are engineered: its pretraining supervised {heads} to attend to copy "
            "targets and pushed every other head off them (see " + design["card"] + "). That these heads are how the "
            "model finds the answer, and that knocking them out breaks it, is true by construction here; what the "
            "study measures is what fine-tuning on each data set changes.")


def summary(entry: dict[str, Any]) -> list[str]:
    """One line per finding: the verdict and the number it rests on."""
    return [f"{f['title']}: {f['verdict']}" + (" (within noise)" if f.get("within_noise") is True else "")
            for f in entry["findings"]]


# ---- report.md ----------------------------------------------------------------------------------
def report_markdown(results: dict[str, Any]) -> str:
    """``report.md``: summary, what was measured, tables, findings in full, the run."""
    cfg, method = results["config"], results["primary_method"]
    d, ft = cfg["data"], cfg["finetune"]
    base = cfg["model"]["base"]
    parts = [f"# rhlens study: {results['name']}", "", "## Summary", ""]
    for task, entry in results["tasks"].items():
        parts += [f"- {task}: {line}" for line in summary(entry)]
    parts += ["", (f"Base model: {'the embedded base' if base == 'embedded' else base}. Each training set fine-tunes a copy "
                   f"of it ({ft['trainable']} parameters, {ft['steps']} steps of batch {ft['batch_size']}, lr {ft['lr']}) at "
                   f"{d['context_tokens']} tokens per example; every model is then evaluated on the same real test set. "
                   f"Retrieval heads: scores above {cfg['scores']['threshold']} ({method} method), at most "
                   f"{cfg['scores']['top_k']} per model. Seeds {results['seeds']['seeds']}. Run digest {results['digest']}; "
                   "every number is in results.json.")]
    note = caveat(results)
    if note:
        parts += ["", f"**Caveat.** {note}"]
    for task, entry in results["tasks"].items():
        tables = task_tables(task, entry, method)
        parts += ["", f"## {task}", ""] + [p + "\n" for p in measured(results, task, entry)]
        parts += ["### Models", "", tables["models"], "", "### Knockout (score changes; 95% intervals)", "",
                  tables["knockout"], "", "### Patching (the real-data model's heads into each model; changes against "
                  "the unpatched model)", "", tables["patching"], "", "### Findings", ""]
        if entry.get("detectors"):
            parts[-2:-2] = ["### Head detectors on the real-data model", "", detectors_markdown(entry["detectors"]), ""]
        for f in entry["findings"]:
            parts.append(f"- **{f['title']}**: the miniature {MARKS[f['verdict']]}. {f['text']} "
                         f"(Paper: {f['paper']}; its figure: {f['paper_figure']}. Verdict rule: {f['rule']}.)")
    parts += ["", "## Run", "", run_line(results)]
    return "\n".join(parts) + "\n"


def run_line(results: dict[str, Any]) -> str:
    v = results["versions"]
    return (f"Total unit time {results['timings']['total_unit_seconds']:.0f} s; seeds {results['seeds']['seeds']}; "
            + ", ".join(f"{k} {val}" for k, val in v.items()) + ".")


# ---- report.html ------------------------------------------------------------------------------
def _md_table_html(md: str) -> str:
    rows = [line.strip("|").split(" | ") for line in md.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    cells = lambda r, tag: "".join(f"<{tag}>{html.escape(c.strip())}</{tag}>" for c in r)  # noqa: E731
    return ("<div class='scroll'><table><tr>" + cells(head, "th") + "</tr>"
            + "".join("<tr>" + cells(r, "td") + "</tr>" for r in body) + "</table></div>")


def _paragraphs(texts: list[str]) -> str:
    return "".join(f"<p>{html.escape(t)}</p>" for t in texts)


def report_html(results: dict[str, Any], path: Path) -> None:
    """``report.html``: what ``report.md`` says, with the figures (every error bar labelled)."""
    from rhlens import plot
    from rhlens.tools.study.report_figures import task_figures

    method = results["primary_method"]
    top = "".join(f"<li>{html.escape(task)}: {html.escape(line)}</li>" for task, e in results["tasks"].items()
                  for line in summary(e))
    figures: list[tuple[str, Any]] = [("Summary", f"<ul>{top}</ul>" + (_paragraphs([caveat(results) or ""]) if caveat(results) else ""))]
    for task, entry in results["tasks"].items():
        figures.append((f"{task}: what was measured", _paragraphs(measured(results, task, entry))))
        figures += task_figures(task, entry, method, metric_name(task, next(iter(entry["models"].values()))["metric"]))
        if entry.get("detectors"):
            figures.append((f"{task}: head detectors", detectors_figure(task, entry["detectors"])))
        tables = task_tables(task, entry, method)
        figures.append((f"{task}: tables", "<h3>Models</h3>" + _md_table_html(tables["models"]) + "<h3>Knockout</h3>"
                        + _md_table_html(tables["knockout"]) + "<h3>Patching</h3>" + _md_table_html(tables["patching"])))
        items = "".join(f"<li><b>{html.escape(f['title'])}</b> ({html.escape(f['verdict'])}): {html.escape(f['text'])} "
                        f"<i>Paper: {html.escape(f['paper'])}; its figure: {html.escape(f['paper_figure'])}. "
                        f"Rule: {html.escape(f['rule'])}.</i></li>"
                        for f in entry["findings"])
        figures.append((f"{task}: findings", f"<ul>{items}</ul>"))
    figures.append(("Run", _paragraphs([run_line(results)])))
    cfg = results["config"]
    intro = (f"Study {results['name']!r} (run digest {results['digest']}): base {cfg['model']['base']}, tasks "
             f"{', '.join(results['tasks'])}, {cfg['data']['context_tokens']} tokens per example, seeds "
             f"{results['seeds']['seeds']}. Every number is in results.json; report.md has the same text and tables.")
    plot.write_html(figures, path, title=f"rhlens study: {results['name']}", intro=intro)


def write_reports(out: Path, results: dict[str, Any]) -> None:
    """Write ``results.json``, ``report.md`` and ``report.html`` into ``out`` (atomically)."""
    md, page = Layout.REPORTS
    write_json_atomic(out / Layout.RESULTS, results)
    write_text_atomic(out / md, report_markdown(results))
    report_html(json.loads(json.dumps(results)), out / page)
