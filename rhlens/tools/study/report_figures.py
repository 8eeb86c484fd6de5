"""The figures of a study task for ``report.html``: score maps, accuracy by training set, recall
against accuracy, knockout, patching; every whisker is a labelled 95% interval."""

from typing import Any

from rhlens.tools.study.findings import iv_text


def _pair(iv: dict[str, Any] | None) -> tuple[float, float] | None:
    return (iv["low"], iv["high"]) if iv else None


def _fit_width(fig: Any) -> Any:
    """Let the page size the figure (no fixed width: fits 1000 px and 600 px pages)."""
    fig.update_layout(width=None, autosize=True)
    return fig


def task_figures(task: str, entry: dict[str, Any], method: str, metric: str) -> list[tuple[str, Any]]:
    """``(heading, figure or HTML)`` pairs of one task (see the module doc)."""
    import torch

    from rhlens import plot

    models, unc = entry["models"], entry["uncertainty"]
    over = "test examples" if unc["n_seeds"] == 1 else "seeds x test examples"
    label = f"95% bootstrap interval over {over}"
    figures: list[tuple[str, Any]] = []
    acc = {m: unc["models"][m]["accuracy"] for m in models}
    n_test = acc["real"]["n"] // unc["n_seeds"]
    figures.append((f"{task}: accuracy by training set ({metric}, {n_test} real test examples per model)",
                    _fit_width(plot.score_bars(
                        {m: a["estimate"] for m, a in acc.items()}, {m: _pair(a) for m, a in acc.items()},
                        title=f"{task}: accuracy on the real test set", yaxis_title="accuracy",
                        interval_label=label, highlight="real"))))
    maps = {m: torch.tensor(info["scores"][method]) for m, info in models.items() if info["n_counted"][method]}
    empty = [m for m in models if m not in maps]
    if empty:  # a map of no example would be all zeros: say so instead of plotting it
        figures.append((f"{task}: no score map for {', '.join(empty)}",
                        f"<p>No example passed the ROUGE gate for {', '.join(empty)} ({method} method), so there is "
                        "no retrieval score to plot, and recall, knockout and patching have no retrieval heads there.</p>"))
    zmax = max([float(t.max()) for t in maps.values()] + [0.0]) or 1.0
    names = list(maps)
    for i in range(0, len(names), 2):  # two models a row, every row on the same colour scale
        counted = ", ".join(f"{m}: {models[m]['n_counted'][method]} of {models[m]['n_scored'][method]} examples counted"
                            for m in names[i:i + 2])
        head = f"{task}: retrieval scores ({method}, 0 to {zmax:.2f} on every map; {counted})"
        figures.append((head, _fit_width(plot.compare_heatmaps({m: maps[m] for m in names[i:i + 2]}, zmin=0.0, zmax=zmax,
                                                               title=f"{task}: retrieval score per head"))))
    corr = unc["correlation"]
    others = [m for m in corr["models"] if unc["models"][m]["recall"] is not None]
    if others:
        rho = corr["spearman"]
        sub = ("" if rho["estimate"] is None else
               f"; Spearman {rho['estimate']:.2f}, p = {rho['p_value']:.3f}, 95% CI "
               f"[{rho['interval']['low']:.2f}, {rho['interval']['high']:.2f}]")
        reps = (unc.get("correlation_replicates") or {}).get("spearman")
        if reps and reps["estimate"] is not None:
            sub += f"; over every (seed, model) point {reps['estimate']:.2f}, within-seed p = {reps['p_value']:.3f}"
        figures.append((f"{task}: recall of the real model's heads vs accuracy{sub}", _fit_width(plot.recall_vs_performance(
            {m: unc["models"][m]["recall"]["estimate"] for m in others}, {m: acc[m]["estimate"] for m in others},
            intervals={m: {"recall": _pair(unc["models"][m]["recall"]), "performance": _pair(acc[m])} for m in others},
            interval_label=f"95% bootstrap intervals ({over})", title=f"{task}: recall vs accuracy"))))
    effects, intervals = {}, {}
    for m, k in entry["knockout"].items():
        u = unc["models"][m]["knockout"]
        if k.get("retrieval") is None or u is None:
            continue
        base = acc[m]
        effects[m] = {"baseline": base["estimate"], "retrieval": base["estimate"] + u["retrieval_delta"]["estimate"],
                      "random": [base["estimate"] + d - k["baseline"] for d in k["random"]]}
        at = base["estimate"]
        intervals[m] = {"baseline": _pair(base),
                        **{key: (at + u[name]["low"], at + u[name]["high"])
                           for key, name in (("retrieval", "retrieval_delta"), ("random", "random_delta"))}}
    if effects:
        figures.append((f"{task}: knockout", _fit_width(plot.knockout_bars(
            effects, intervals=intervals, interval_label=f"{label} (knockouts: intact score + the paired change's interval)",
            title=f"{task}: retrieval vs random heads knocked out"))))
    rows = {}
    for m, rec in entry["patching"].items():
        u = unc["models"][m]["patching"]
        if rec.get("rows") and u:
            rows[m] = {"original": rec["rows"]["original"]["score"], "real model": rec["source_score"],
                       **{f"{k}: change (heads)": f"{iv_text(u[k]['delta'], True)} ({max(u[k]['n_heads'])})" for k in u}}
    if rows:
        figures.append((f"{task}: patching (changes with 95% intervals; a row of 0 heads patches nothing)",
                        _fit_width(plot.patching_table_figure(rows, title=f"{task}: real-data heads patched in"))))
    return figures
