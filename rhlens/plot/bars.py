"""Scores by group with their intervals (e.g. accuracy by training set)."""

from typing import Mapping, Sequence

import plotly.graph_objects as go

from rhlens.plot._grid import _FONT


def interval_errors(values: Sequence[float], intervals: Sequence[Sequence[float] | None]) -> dict:
    """Plotly ``error_y`` for asymmetric whiskers from ``(low, high)`` intervals (``None``: no whisker).

    >>> interval_errors([0.5], [(0.25, 1.0)])["array"], interval_errors([0.5], [(0.25, 1.0)])["arrayminus"]
    ([0.5], [0.25])
    """
    up = [max(0.0, iv[1] - v) if iv is not None else 0.0 for v, iv in zip(values, intervals)]
    down = [max(0.0, v - iv[0]) if iv is not None else 0.0 for v, iv in zip(values, intervals)]
    return dict(type="data", symmetric=False, array=up, arrayminus=down, visible=True, color="#333", thickness=1.5)


def _short(values: Sequence[float], tallest: float) -> list[bool]:
    top = abs(tallest) if tallest == tallest and tallest else 1.0
    return [not (v == v and abs(v) >= 0.08 * top) for v in values]


def value_labels(values: Sequence[float], tallest: float, error: dict | None = None) -> dict:
    """Plotly text settings writing each bar's value inside it (whiskers stay readable), or above it
    when the bar is too short to hold it (under 8% of ``tallest``, e.g. a knockout to 0.00), so
    every bar says its value. A short bar with an upper whisker (``error``, from
    :func:`interval_errors`) gets no text here: :func:`whisker_labels` writes it above the whisker.

    >>> value_labels([0.9, 0.0], tallest=0.9)["textposition"]
    ['inside', 'outside']
    >>> value_labels([0.9, 0.04], tallest=0.9, error=interval_errors([0.9, 0.04], [None, (0.0, 0.1)]))["textposition"]
    ['inside', 'none']
    """
    up = (error or {}).get("array") or [0.0] * len(values)
    where = ["inside" if not short else ("none" if u > 0 else "outside") for short, u in zip(_short(values, tallest), up)]
    return dict(texttemplate="%{y:.2f}", textposition=where, insidetextanchor="start", cliponaxis=False)


def whisker_labels(x: Sequence[str], values: Sequence[float], tallest: float, error: dict | None,
                   **scatter: object) -> go.Scatter | None:
    """Text above the upper whisker of each short bar that has one (the labels :func:`value_labels`
    leaves out, which would sit on the whisker); ``None`` when there is none. ``scatter`` passes
    e.g. ``offsetgroup`` so the text stands over its bar in a grouped chart.

    >>> t = whisker_labels(["a", "b"], [0.9, 0.04], 0.9, interval_errors([0.9, 0.04], [None, (0.0, 0.1)]))
    >>> list(t.x), [round(y, 6) for y in t.y], list(t.text)
    (['b'], [0.1], ['0.04'])
    """
    up = (error or {}).get("array") or [0.0] * len(values)
    keep = [i for i, (short, u) in enumerate(zip(_short(values, tallest), up)) if short and u > 0]
    if not keep:
        return None
    return go.Scatter(x=[x[i] for i in keep], y=[values[i] + up[i] for i in keep], text=[f"{values[i]:.2f}" for i in keep],
                      mode="text", textposition="top center", showlegend=False, hoverinfo="skip", cliponaxis=False,
                      **scatter)


def score_bars(scores: Mapping[str, float], intervals: Mapping[str, Sequence[float]] | None = None, *,
               title: str | None = None, yaxis_title: str = "score", interval_label: str = "95% interval",
               highlight: str | None = None) -> go.Figure:
    """One bar per group (e.g. a model's accuracy by training set), whiskers from ``intervals``.

    Args:
        scores: ``{group: value}`` in display order.
        intervals: ``{group: (low, high)}`` (e.g. bootstrap 95% intervals); groups missing get no
            whisker.
        title: the figure's title; ``interval_label`` (what the whiskers are) is added under it.
        yaxis_title: the value's name (say the metric).
        highlight: a group drawn in another colour (e.g. the real-data model).

    >>> fig = score_bars({"real": 0.8, "symbolic": 0.5}, {"real": (0.7, 0.9)}, highlight="real")
    >>> list(fig.data[0].x), [round(v, 6) for v in fig.data[0].error_y.array]
    (['real', 'symbolic'], [0.1, 0.0])
    """
    if not scores:
        raise ValueError("score_bars needs at least one group")
    groups = [str(g) for g in scores]
    values = [float(v) for v in scores.values()]
    ivs = [tuple(intervals[g]) if intervals and g in intervals else None for g in scores]
    colours = ["#d62728" if g == highlight else "#1f77b4" for g in groups]
    error, tallest = interval_errors(values, ivs), max([abs(v) for v in values if v == v] or [1.0])
    fig = go.Figure(go.Bar(
        x=groups, y=values, marker_color=colours, error_y=error, **value_labels(values, tallest, error),
        customdata=[f"[{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "no interval" for iv in ivs],
        hovertemplate="%{x}: %{y:.3f}<br>" + interval_label + ": %{customdata}<extra></extra>",
    ))
    above = whisker_labels(groups, values, tallest, error)
    if above is not None:
        fig.add_trace(above)
    sub = f"whiskers: {interval_label}" if intervals else ""
    fig.update_layout(title=(f"{title}<br><sup>{sub}</sup>" if title and sub else (title or sub) or None), font=_FONT,
                      plot_bgcolor="white", yaxis_title=yaxis_title, height=420, showlegend=False,
                      margin=dict(l=60, r=20, t=80, b=60))
    fig.update_yaxes(showgrid=True, gridcolor="#eee", rangemode="tozero")
    return fig
