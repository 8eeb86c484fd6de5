"""The quickstart's report: ``report.html`` opens with a summary; every number carries its 95%
bootstrap interval, the metric and how many examples it counts; it says that the embedded base's
retrieval heads are engineered; the knockout bars' whiskers are labelled.

:func:`report_intervals` computes the intervals (also written to ``summary.json``),
:func:`summary_lines` says each number in one line, :func:`write_report` writes the page.

>>> iv = {"estimate": 0.5, "low": 0.25, "high": 0.75, "n": 20, "level": 0.95, "over": "examples"}
>>> _num(iv)
'0.50 [0.25, 0.75]'
"""

import html
from pathlib import Path
from typing import Any

from rhlens.heads import RETRIEVAL_THRESHOLD
from rhlens.stats import bootstrap_mean, bootstrap_paired_delta


def _num(interval: dict[str, Any]) -> str:
    return f"{interval['estimate']:.2f} [{interval['low']:.2f}, {interval['high']:.2f}]"


def _change(interval: dict[str, Any]) -> str:
    return f"{interval['estimate']:+.2f} [{interval['low']:+.2f}, {interval['high']:+.2f}]"


def report_intervals(before: Any, after: Any, top_effect: Any, *, seed: int = 0) -> dict[str, Any]:
    """95% bootstrap intervals over the held-out examples (:mod:`rhlens.stats`): the score before
    and after fine-tuning and, when heads were knocked out, with the retrieval heads out, with random
    heads out (each example's mean over the draws), and both changes (paired per example).

    ``before``, ``after``: :class:`rhlens.EvalResult`; ``top_effect``: the
    :class:`rhlens.KnockoutEffect` (its baseline is ``after``) or ``None``.
    """
    out = {"before": bootstrap_mean(before.per_example.tolist(), seed=seed).to_dict(),
           "after": bootstrap_mean(after.per_example.tolist(), seed=seed).to_dict()}
    if top_effect is None:
        return out
    base = top_effect.baseline.per_example.tolist()
    knocked = top_effect.knocked.per_example.tolist()
    out["retrieval_heads_out"] = bootstrap_mean(knocked, seed=seed).to_dict()
    out["retrieval_change"] = bootstrap_paired_delta(knocked, base, seed=seed).to_dict()
    if top_effect.controls:
        draws = [c.per_example.tolist() for c in top_effect.controls]
        random = [sum(col) / len(col) for col in zip(*draws)]
        out["random_heads_out"] = bootstrap_mean(random, seed=seed).to_dict()
        out["random_change"] = bootstrap_paired_delta(random, base, seed=seed).to_dict()
    return out


def engineered_heads_note() -> str | None:
    """The embedded base's caveat (the study report's words): its retrieval heads were engineered."""
    from rhlens.tools.study.report import caveat, embedded_base_design

    return caveat({"base_design": embedded_base_design()})


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The report's summary, one line per number (metric, interval and examples counted)."""
    iv, n, metric = summary["intervals"], summary["n_eval"], summary["metric"]
    over = summary[f"retrieval_heads_over_{RETRIEVAL_THRESHOLD}"]
    lines = [
        f"Score ({metric}, mean over the {n} held-out examples): {_num(iv['before'])} before fine-tuning, "
        f"{_num(iv['after'])} after {summary['fine_tuning_steps']} steps on synthetic {summary['task']} "
        f"({summary['variant']}) at {summary['context_tokens']} tokens.",
        f"Retrieval heads: {len(over)} of the {summary['heads_in_all']} heads score over {RETRIEVAL_THRESHOLD} (Wu et "
        f"al.'s decode-mode score; it counts {summary['examples_counted_for_retrieval_scores']} of the {n} examples, "
        "those the model answered with ROUGE-1 recall of the answer over 0.5).",
    ]
    top, random = summary["knockout_top_heads"], summary["knockout_random_heads"]
    if top is not None:
        line = (f"Knockout ({top['mode']}, on the same {n} examples): with the {len(top['heads'])} retrieval heads out "
                f"the score is {_num(iv['retrieval_heads_out'])} (change {_change(iv['retrieval_change'])})")
        if "random_heads_out" in iv:
            line += (f"; with as many random heads out, {_num(iv['random_heads_out'])} on average over "
                     f"{len(random['draws'])} draws (change {_change(iv['random_change'])})")
        lines.append(line + ".")
    lines.append(f"Intervals: 95% bootstrap over the {n} held-out examples (random heads: each example's mean over "
                 "the draws; changes: paired per example).")
    return lines


def write_report(path: Path, summary: dict[str, Any], grid: Any, top_effect: Any) -> None:
    """``report.html``: the summary (with the reading and the engineered-heads caveat), the score of
    every head, the knockout bars with labelled 95% intervals, and the run."""
    from rhlens.plot import head_heatmap, knockout_bars, write_html
    from rhlens.tools.study.pipeline import package_versions

    n, iv = summary["n_eval"], summary["intervals"]
    note = engineered_heads_note()
    items = "".join(f"<li>{html.escape(line)}</li>" for line in summary_lines(summary))
    figures: list[tuple[str, Any]] = [
        ("Summary", f"<p><strong>{html.escape(summary['reading'])}</strong></p><ul>{items}</ul>"
                    + (f"<p>{html.escape(note)}</p>" if note else "")),
        ("Retrieval score of every head",
         head_heatmap(grid, title=f"retrieval score: {summary['examples_counted_for_retrieval_scores']} of {n} examples "
                                  "counted")),
    ]
    if top_effect is not None:
        task = summary["task"]
        group = {"baseline": top_effect.baseline, "retrieval": top_effect, "random": top_effect.controls}
        keys = {"baseline": "after", "retrieval": "retrieval_heads_out", "random": "random_heads_out"}
        whiskers = {task: {k: (iv[v]["low"], iv[v]["high"]) for k, v in keys.items() if v in iv}}
        figures.append(("Knockout: the retrieval heads against random heads", knockout_bars(
            {task: group}, intervals=whiskers,
            interval_label=f"95% bootstrap interval over {n} examples (random: per-example mean of the draws)",
            title=f"{len(top_effect.heads)} heads knocked out ({top_effect.mode}), {len(top_effect.controls)} random draws"
                  f"<br>{summary['metric']}")))
    over = summary[f"retrieval_heads_over_{RETRIEVAL_THRESHOLD}"]
    rows = "".join(f"<tr><td>{h}</td><td>{s:.3f}</td></tr>" for h, s in over.items()) or "<tr><td colspan=2>none</td></tr>"
    figures.append((f"Heads over {RETRIEVAL_THRESHOLD}", f"<table><tr><th>head</th><th>retrieval score</th></tr>{rows}</table>"))
    versions = ", ".join(f"{k} {v}" for k, v in package_versions().items())
    figures.append(("Run", f"<p>Settings: {html.escape(', '.join(f'{k} {v}' for k, v in summary['settings'].items()))}. "
                           f"Every number is in summary.json. Versions: {html.escape(versions)}.</p>"))
    write_html(figures, path, title="rhlens quickstart",
               intro="The embedded base model, fine-tuned briefly on synthetic data, then its retrieval heads scored "
                     "and knocked out.")
