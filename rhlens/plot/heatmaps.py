"""Layer x head heatmaps (one grid, several grids on one scale) and the NIAH length x depth grid."""

from typing import Any, Mapping, Sequence

import plotly.graph_objects as go

from rhlens.plot._grid import (DIVERGING, SEQUENTIAL, _FONT, _auto_diverging, _colour_range, _heatmap_trace,
                               _layer_head, _style_axes, _to_numpy)


# --- figures --------------------------------------------------------------------------------
def head_heatmap(scores: Any, *, title: str | None = None, diverging: bool | None = None,
                 zmin: float | None = None, zmax: float | None = None) -> go.Figure:
    """A layers x heads heatmap of per-head values; layer 0 at the top.

    Args:
        scores: ``[n_layers, n_heads]`` tensor, array or nested list, or an object holding one as
            ``.scores`` (:class:`rhlens.HeadScores`) or ``.effect`` (:class:`rhlens.PatchSweep`).
        title: the figure's title.
        diverging: ``True``: a red-white-blue scale centred at 0 (effects, deltas); ``False``: a
            sequential scale (scores); ``None``: diverging when any value is negative.
        zmin, zmax: the colour range; default ``[0, max]`` (sequential) or ``[-m, m]`` with ``m``
            the largest absolute value (diverging).

    Hovering a cell shows ``L4H4`` and its value. Ticks: every head up to 16, every second up to 32.

    >>> fig = head_heatmap([[0.1, -0.4], [0.2, 0.0]])
    >>> fig.data[0].zmid, fig.data[0].zmin, fig.data[0].zmax
    (0.0, -0.4, 0.4)
    """
    z = _layer_head(scores)
    div = _auto_diverging(diverging, [z])
    lo, hi = _colour_range([z], div, zmin, zmax)
    value_name = "effect" if div else "score"
    trace = _heatmap_trace(
        z, value_name,
        colorscale=DIVERGING if div else SEQUENTIAL,
        zmin=lo, zmax=hi, zmid=0.0 if div else None,
        colorbar=dict(title=dict(text=value_name)),
    )
    n_layers, n_heads = z.shape
    fig = go.Figure(trace)
    _style_axes(fig, n_layers, n_heads)
    fig.update_layout(
        title=title, font=_FONT, plot_bgcolor="white",
        width=min(1100, max(560, 24 * n_heads + 220)),
        height=min(900, max(300, 22 * n_layers + 170)),
        margin=dict(l=70, r=30, t=70 if title else 30, b=60),
    )
    return fig


def compare_heatmaps(named: Mapping[str, Any], *, title: str | None = None,
                     zmin: float | None = None, zmax: float | None = None) -> go.Figure:
    """Several models' per-head grids side by side on ONE colour scale (one colour bar).

    Args:
        named: ``{"real": scores, "synthetic kv": scores, ...}``, each as in :func:`head_heatmap`
            (grids may differ in size).
        title: the figure's title.
        zmin, zmax: the shared colour range (default: from all grids together; diverging when any
            value is negative).

    >>> fig = compare_heatmaps({"a": [[0.0, 0.5]], "b": [[1.0, 0.2]]})
    >>> [t.coloraxis for t in fig.data], fig.layout.coloraxis.cmin, fig.layout.coloraxis.cmax
    (['coloraxis', 'coloraxis'], 0.0, 1.0)
    """
    from plotly.subplots import make_subplots

    if not isinstance(named, Mapping) or not named:
        raise ValueError("compare_heatmaps needs a non-empty mapping {name: [n_layers, n_heads] scores}")
    grids = {str(name): _layer_head(s, f"compare_heatmaps[{name!r}]") for name, s in named.items()}
    div = _auto_diverging(None, grids.values())
    lo, hi = _colour_range(list(grids.values()), div, zmin, zmax)
    value_name = "effect" if div else "score"
    n = len(grids)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(grids), horizontal_spacing=min(0.08, 0.4 / n))
    for i, z in enumerate(grids.values(), start=1):
        fig.add_trace(_heatmap_trace(z, value_name, coloraxis="coloraxis"), row=1, col=i)
        _style_axes(fig, *z.shape, row=1, col=i, show_y_title=(i == 1))
    fig.update_layout(
        coloraxis=dict(colorscale=DIVERGING if div else SEQUENTIAL, cmin=lo, cmax=hi,
                       cmid=0.0 if div else None, colorbar=dict(title=dict(text=value_name))),
        title=title, font=_FONT, plot_bgcolor="white",
        width=min(1100, max(500, sum(24 * z.shape[1] + 80 for z in grids.values()) + 200)),  # the report page is at most 1200 px wide
        height=min(900, max(320, 22 * max(z.shape[0] for z in grids.values()) + 190)),
    )
    return fig



def niah_grid_heatmap(grid: Any, lengths: Sequence[float], depths: Sequence[float], *,
                      title: str | None = None) -> go.Figure:
    """Wu et al.'s needle-in-a-haystack grid: context length (x) by needle depth (y).

    Args:
        grid: scores indexed ``[length, depth]`` (shape ``[len(lengths), len(depths)]``), or a flat
            sequence in :func:`rhlens.niah_grid`'s order (length-major, one value per cell).
        lengths: context lengths in tokens.
        depths: needle depths as fractions in ``[0, 1]`` (shown as percent).
        title: the figure's title.

    The figure's ``z`` is ``[depth, length]`` (depth 0%, the start of the context, at the top).

    >>> fig = niah_grid_heatmap([[1.0, 0.5], [0.0, 0.25]], lengths=[64, 128], depths=[0.0, 1.0])
    >>> fig.data[0].z.tolist()
    [[1.0, 0.0], [0.5, 0.25]]
    """
    lengths, depths = list(lengths), list(depths)
    arr = _to_numpy(grid)
    if arr.ndim == 1 and arr.size == len(lengths) * len(depths):
        arr = arr.reshape(len(lengths), len(depths))
    if arr.shape != (len(lengths), len(depths)):
        hint = " (it looks transposed: pass grid indexed [length, depth])" if arr.shape == (len(depths), len(lengths)) else ""
        raise ValueError(
            f"niah_grid_heatmap: grid has shape {arr.shape}, expected [len(lengths), len(depths)] = "
            f"[{len(lengths)}, {len(depths)}]{hint}"
        )
    z = arr.T
    depth_labels = [f"{100 * float(d):g}%" for d in depths]
    length_labels = [f"{int(v)}" if float(v).is_integer() else f"{v}" for v in lengths]
    lo, hi = _colour_range([z], False, None, None)
    fig = go.Figure(go.Heatmap(
        z=z, x=length_labels, y=depth_labels, colorscale=SEQUENTIAL, zmin=lo, zmax=hi,
        colorbar=dict(title=dict(text="score")), xgap=1, ygap=1,
        hovertemplate="context %{x} tokens<br>needle depth %{y}<br>score = %{z:.3f}<extra></extra>",
    ))
    fig.update_xaxes(title_text="context length (tokens)", type="category")
    fig.update_yaxes(title_text="needle depth", type="category", autorange="reversed")
    fig.update_layout(title=title, font=_FONT, plot_bgcolor="white",
                      width=min(1100, max(460, 60 * len(lengths) + 220)),
                      height=min(900, max(320, 34 * len(depths) + 170)))
    return fig
