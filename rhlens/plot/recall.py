"""Head recall against downstream performance, with a fitted line and Pearson's r / Spearman's rho."""

import math
from typing import Any, Mapping

import numpy as np
import plotly.graph_objects as go

from rhlens.plot._grid import _FONT
from rhlens.stats import pearson, spearman


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def recall_vs_performance(recall: Mapping[str, float], performance: Mapping[str, float], *,
                          title: str | None = None, intervals: Mapping[str, Mapping[str, Any]] | None = None,
                          interval_label: str = "95% bootstrap intervals") -> go.Figure:
    """Each variant's recall of the reference model's retrieval heads against its task score.

    Args:
        recall: ``{variant: recall}`` (e.g. ``HeadSet.recall`` of the real-data model's heads).
        performance: ``{variant: score}`` on the real task; the same keys as ``recall``.
        title: the figure's title (Pearson's r and Spearman's rho are appended).
        intervals: ``{variant: {"recall": (low, high), "performance": (low, high)}}``: whiskers on
            both axes (named by ``interval_label`` under the title).

    The recall axis runs from 0 to 1 (recall cannot leave it).

    Points are labelled by variant; the line is the least-squares fit. Pearson's r, Spearman's rho
    (ranks with ties averaged), the fit's slope and intercept and ``n`` are in
    ``fig.layout.meta`` (NaN where undefined: fewer than 3 points, or no spread).

    >>> fig = recall_vs_performance({"real": 1.0, "fictional": 0.5, "symbolic": 0.0},
    ...                             {"real": 0.9, "fictional": 0.6, "symbolic": 0.3})
    >>> list(fig.data[0].text), round(fig.layout.meta["slope"], 6), fig.layout.meta["spearman_rho"]
    (['real', 'fictional', 'symbolic'], 0.6, 1.0)
    """
    if set(recall) != set(performance):
        missing = sorted(set(recall) ^ set(performance))
        raise ValueError(f"recall and performance must have the same variants; only in one of them: {missing}")
    if not recall:
        raise ValueError("recall_vs_performance needs at least one variant")
    names = list(recall)
    x = np.array([float(recall[n]) for n in names])
    y = np.array([float(performance[n]) for n in names])
    xs, ys = x.tolist(), y.tolist()
    r, rho = (float("nan") if v is None else v for v in (pearson(xs, ys), spearman(xs, ys)))
    slope = intercept = float("nan")
    if len(x) >= 2 and float(((x - x.mean()) ** 2).sum()) > 0:
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
        intercept = float(y.mean() - slope * x.mean())

    from rhlens.plot.bars import interval_errors

    def whiskers(values: np.ndarray, key: str) -> dict | None:
        if not intervals:
            return None
        return interval_errors(list(values), [tuple(intervals[n][key]) if n in intervals and intervals[n].get(key)
                                              else None for n in names])

    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="markers+text", text=names, textposition=_label_positions(x, y), name="variants",
        marker=dict(size=11, color="#1f77b4"), error_x=whiskers(x, "recall"), error_y=whiskers(y, "performance"),
        hovertemplate="%{text}<br>head recall = %{x:.3f}<br>score = %{y:.3f}<extra></extra>",
    ))
    if math.isfinite(slope):
        xs = np.array([x.min(), x.max()])
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name="least-squares fit",
                                 line=dict(color="#d62728", dash="dash"), hoverinfo="skip"))
    stats = f"Pearson r = {_fmt(r)}, Spearman \u03c1 = {_fmt(rho)} (n = {len(x)})"
    if intervals:
        stats += f"; whiskers: {interval_label}"
    fig.update_layout(
        title=f"{title}<br><sup>{stats}</sup>" if title else stats,
        xaxis_title="recall of the reference model's retrieval heads",
        yaxis_title="score on the real task",
        font=_FONT, showlegend=False, height=480, plot_bgcolor="white",  # width: the page's
        meta=dict(pearson_r=r, spearman_rho=rho, slope=slope, intercept=intercept, n=len(x)),
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False, range=[-0.05, 1.05], tickvals=[0, 0.25, 0.5, 0.75, 1])
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


def _label_positions(x: np.ndarray, y: np.ndarray) -> list[str]:
    """A label side per point: a point alone is labelled above; points crowded at (nearly) the same
    recall take their labels to the right and left in turn, in order of score, so variants with
    equal recall and close scores stay readable."""
    span_x = float(np.ptp(x)) or 1.0
    span_y = float(np.ptp(y)) or 1.0

    def near(i: int, j: int) -> bool:
        return bool(abs(x[i] - x[j]) < 0.05 * span_x and abs(y[i] - y[j]) < 0.1 * span_y)

    sides = ["top center"] * len(x)
    order = sorted(range(len(x)), key=lambda i: (y[i], i))
    for rank, i in enumerate(order):
        if any(near(i, j) for j in range(len(x)) if j != i):
            crowd = sum(near(i, j) for j in order[:rank])
            sides[i] = ("middle right", "middle left")[crowd % 2]
    return sides
