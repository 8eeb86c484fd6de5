"""Knockout bars (intact / retrieval heads / random heads) and the cross-model patching table."""

import math
from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go

from rhlens.plot._grid import _FONT


def _score_of(value: Any, what: str) -> float:
    """A float, the knocked-out score of a ``KnockoutEffect`` (``.knocked.score``), or an
    ``EvalResult``'s ``.score``."""
    knocked = getattr(value, "knocked", None)
    if knocked is not None:
        return float(knocked.score)
    if hasattr(value, "score") and not isinstance(value, (int, float)):
        return float(value.score)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what}: expected a float or a KnockoutEffect, got {type(value).__name__}") from None


def _knockout_group(name: str, entry: Any) -> tuple[float, float, list[float]]:
    if hasattr(entry, "knocked") and hasattr(entry, "baseline"):  # a KnockoutEffect, with its random controls
        return (float(entry.baseline.score), float(entry.knocked.score),
                [float(c.score) for c in getattr(entry, "controls", [])])
    if not isinstance(entry, Mapping):
        raise TypeError(
            f"knockout_bars[{name!r}]: expected a mapping with 'baseline', 'retrieval' and 'random', "
            f"got {type(entry).__name__}"
        )
    if "retrieval" not in entry or "random" not in entry:
        raise ValueError(f"knockout_bars[{name!r}] needs keys 'retrieval' and 'random'; it has {sorted(entry)}")
    retrieval = _score_of(entry["retrieval"], f"knockout_bars[{name!r}]['retrieval']")
    random = entry["random"]
    if isinstance(random, (int, float)) or hasattr(random, "knocked"):
        random = [random]
    draws = [_score_of(v, f"knockout_bars[{name!r}]['random']") for v in random]
    if "baseline" in entry:
        baseline = _score_of(getattr(entry["baseline"], "score", entry["baseline"]), f"knockout_bars[{name!r}]['baseline']")
    elif hasattr(entry["retrieval"], "baseline"):
        baseline = float(entry["retrieval"].baseline.score)
    else:
        raise ValueError(f"knockout_bars[{name!r}] needs 'baseline' (or KnockoutEffect values that carry it)")
    return baseline, retrieval, draws


def knockout_bars(effects: Mapping[str, Any], *, title: str | None = None,
                  intervals: Mapping[str, Mapping[str, Any]] | None = None,
                  interval_label: str = "95% bootstrap interval over test examples") -> go.Figure:
    """Grouped bars: the score intact, with the retrieval heads knocked out, and with random heads
    knocked out (bar: mean over the draws; whisker: the lowest to the highest draw).

    Args:
        effects: ``{group: {"baseline": float, "retrieval": float, "random": [float, ...]}}``,
            one group per model or task. ``"retrieval"`` and each ``"random"`` entry may be a
            :class:`rhlens.KnockoutEffect` (its ``knocked.score``; ``"baseline"`` then defaults to
            its ``baseline.score``) or an ``EvalResult``. A group may also be one
            ``KnockoutEffect`` that carries its random ``controls`` (``knockout_effect(...,
            n_random=5)``). A single group may be given without the outer mapping.
        title: the figure's title (what the whiskers are is added under it).
        intervals: ``{group: {"baseline": (low, high), "retrieval": ..., "random": ...}}``: whiskers
            on every bar from these intervals (named by ``interval_label``) instead of the draws' range.

    Each draw's score is also drawn as a dot, and listed on hover.

    >>> fig = knockout_bars({"kv": {"baseline": 0.9, "retrieval": 0.2, "random": [0.75, 1.0, 0.5]}})
    >>> [t.name for t in fig.data][:3], fig.data[2].y, fig.data[2].error_y.array, fig.data[2].error_y.arrayminus
    (['intact', 'retrieval heads knocked out', 'random heads knocked out (mean of the draws)'], (0.75,), (0.25,), (0.25,))
    """
    from rhlens.plot.bars import interval_errors, value_labels, whisker_labels

    if isinstance(effects, Mapping) and "retrieval" in effects and not isinstance(effects["retrieval"], Mapping):
        effects = {"": effects}
    if not isinstance(effects, Mapping) or not effects:
        raise ValueError("knockout_bars needs a non-empty mapping {group: {'baseline', 'retrieval', 'random'}}")
    groups = [str(g) for g in effects]
    parsed = [_knockout_group(g, e) for g, e in zip(groups, effects.values())]
    baseline = [p[0] for p in parsed]
    retrieval = [p[1] for p in parsed]
    draws = [p[2] for p in parsed]
    means = [float(np.mean(d)) if d else float("nan") for d in draws]

    def whiskers(values: list[float], key: str) -> dict | None:
        if intervals is None:
            return None
        return interval_errors(values, [tuple(intervals[g][key]) if g in intervals and intervals[g].get(key) else None
                                        for g in groups])

    ranges = [(min(d), max(d)) if d else None for d in draws]
    fig = go.Figure()
    tallest = max([abs(v) for v in baseline + retrieval + means if v == v] or [1.0])

    errors = {"intact": whiskers(baseline, "baseline"), "retrieval": whiskers(retrieval, "retrieval"),
              "random": whiskers(means, "random") or interval_errors(means, ranges)}
    fig.add_trace(go.Bar(x=groups, y=baseline, name="intact", marker_color="#7f7f7f", offsetgroup="intact",
                         **value_labels(baseline, tallest, errors["intact"]),
                         error_y=errors["intact"], hovertemplate="%{x}<br>intact: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(x=groups, y=retrieval, name="retrieval heads knocked out", marker_color="#d62728",
                         offsetgroup="retrieval", **value_labels(retrieval, tallest, errors["retrieval"]),
                         error_y=errors["retrieval"],
                         hovertemplate="%{x}<br>retrieval heads knocked out: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(
        x=groups, y=means, name="random heads knocked out (mean of the draws)", marker_color="#1f77b4",
        offsetgroup="random", **value_labels(means, tallest, errors["random"]),
        error_y=errors["random"],
        customdata=[", ".join(f"{v:.3f}" for v in d) for d in draws],
        hovertemplate="%{x}<br>random heads knocked out: mean %{y:.3f}<br>draws: %{customdata}<extra></extra>",
    ))
    dot_x = [g for g, d in zip(groups, draws) for _ in d]
    dot_y = [v for d in draws for v in d]
    fig.add_trace(go.Scatter(x=dot_x, y=dot_y, mode="markers", name="each random draw",
                             offsetgroup="random",
                             marker=dict(color="black", size=6, symbol="circle-open"),
                             hovertemplate="%{x}<br>random draw: %{y:.3f}<extra></extra>"))
    for group, values in (("intact", baseline), ("retrieval", retrieval), ("random", means)):
        above = whisker_labels(groups, values, tallest, errors[group], offsetgroup=group)
        if above is not None:
            fig.add_trace(above)
    what = f"whiskers: {interval_label}" if intervals else "whisker on the random bar: lowest to highest draw"
    fig.update_layout(
        barmode="group", scattermode="group", title=f"{title}<br><sup>{what}</sup>" if title else what,
        font=_FONT, plot_bgcolor="white", legend=dict(orientation="h", y=-0.15),
        yaxis_title="score", height=460,  # width: the container's (a fixed one overflows notebook cells)
    )
    fig.update_yaxes(showgrid=True, gridcolor="#eee", rangemode="tozero")
    return fig


def patching_table_figure(rows: Any, *, title: str | None = None) -> go.Figure:
    """A table figure of patching results (or any ``{row: {column: value}}`` numbers).

    Args:
        rows: ``{row name: {column: value}}`` (columns in first-seen order; a missing cell shows
            empty), or a :class:`rhlens.PatchingTable` (columns ``heads``, ``n heads``, ``score``,
            ``delta``).
        title: the figure's title.

    Floats are shown with 3 decimals.

    >>> fig = patching_table_figure({"original": {"score": 0.5, "delta": 0.0}, "intersection": {"score": 0.75, "delta": 0.25}})
    >>> list(fig.data[0].header.values), [list(c) for c in fig.data[0].cells.values]
    (['', 'score', 'delta'], [['original', 'intersection'], ['0.500', '0.750'], ['0.000', '0.250']])
    """
    if hasattr(rows, "rows") and not isinstance(rows, Mapping):
        rows = {
            r.name: {"heads": " ".join(str(h) for h in r.heads.ordered()) or "-", "n heads": len(r.heads),
                     "score": r.score, "delta": r.delta}
            for r in rows.rows
        }
    if not isinstance(rows, Mapping) or not rows:
        raise ValueError("patching_table_figure needs a non-empty mapping {row: {column: value}} or a PatchingTable")
    columns: list[str] = []
    for name, row in rows.items():
        if not isinstance(row, Mapping):
            raise TypeError(f"patching_table_figure row {name!r}: expected a mapping {{column: value}}, got {type(row).__name__}")
        for c in row:
            if str(c) not in columns:
                columns.append(str(c))

    def cell(v: Any) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            return "n/a" if math.isnan(v) else f"{v:.3f}"
        return str(v)

    names = [str(n) for n in rows]
    values = [names] + [[cell({str(k): v for k, v in row.items()}.get(c)) for row in rows.values()] for c in columns]
    fig = go.Figure(go.Table(
        header=dict(values=[""] + columns, fill_color="#e8eef7", align="left", font=dict(size=13)),
        cells=dict(values=values, align="left", height=26, font=dict(size=12)),
    ))
    fig.update_layout(title=title, font=_FONT, height=min(900, 120 + 28 * len(names)),
                      margin=dict(l=20, r=20, t=60 if title else 20, b=10))
    return fig
