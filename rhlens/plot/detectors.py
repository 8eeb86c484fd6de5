"""Knockout curves per head detector: one line per detector, the random-heads band behind them."""

from typing import Any

import plotly.graph_objects as go

from rhlens.plot._grid import _FONT


def _as_dict(curves: Any) -> dict:
    data = curves.to_dict() if hasattr(curves, "to_dict") else curves
    if not isinstance(data, dict) or not {"ks", "baseline", "curves", "random"} <= set(data):
        raise TypeError("knockout_curves_figure needs a KnockoutCurves or a dict with ks, baseline, curves and random")
    return data


def knockout_curves_figure(curves: Any, *, title: str | None = None) -> go.Figure:
    """The metric against the number of heads knocked out: one line per detector (its top-k
    heads), the random heads' band (min to max over the draws) and mean, and the intact baseline.

    Args:
        curves: a :class:`rhlens.interventions.curves.KnockoutCurves`, or its ``to_dict()``:
            ``{"ks": [...], "baseline": float, "curves": {detector: [...]}, "random": [[draws] per k]}``.

    >>> fig = knockout_curves_figure({"ks": [1, 3], "baseline": -1.0, "curves": {"forced": [-2.0, -5.0]},
    ...                               "random": [[-1.0, -1.2], [-1.5, -1.1]]})
    >>> [t.name for t in fig.data], fig.data[-1].y
    (['random heads (min-max)', 'random heads (mean)', 'intact', 'forced'], (-2.0, -5.0))
    """
    data = _as_dict(curves)
    ks = [int(k) for k in data["ks"]]
    draws = [[float(v) for v in row] for row in data["random"]]
    if len(draws) != len(ks):
        raise ValueError(f"knockout_curves_figure: {len(ks)} ks but {len(draws)} rows of random draws")
    fig = go.Figure()
    if draws and draws[0]:
        lo, hi = [min(r) for r in draws], [max(r) for r in draws]
        fig.add_trace(go.Scatter(x=ks + ks[::-1], y=hi + lo[::-1], fill="toself", fillcolor="rgba(128,128,128,0.25)",
                                 line={"width": 0}, name="random heads (min-max)", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=ks, y=[sum(r) / len(r) for r in draws], mode="lines", line={"dash": "dash", "color": "gray"},
                                 name="random heads (mean)"))
    fig.add_trace(go.Scatter(x=[ks[0], ks[-1]], y=[float(data["baseline"])] * 2, mode="lines",
                             line={"dash": "dot", "color": "black"}, name="intact"))
    for name, values in data["curves"].items():
        fig.add_trace(go.Scatter(x=ks, y=[float(v) for v in values], mode="lines+markers", name=str(name)))
    fig.update_layout(title=title or "Knocking out each detector's top-k heads", font=_FONT,
                      xaxis_title="heads knocked out (k)", yaxis_title=str(data.get("metric", "metric")))
    return fig
