"""Plotly figures of rhlens results: one function per figure, each returns a ``go.Figure``.

Nothing here calls ``show()``: display a figure in a notebook by leaving it as a cell's last
value, save it with ``fig.write_html(...)``, or put several on one offline page with
:func:`write_html`. Every function takes rhlens result objects *and* plain data (nested lists,
NumPy arrays, torch tensors, dicts of floats), so scripts can plot numbers they read from JSON.

- :func:`head_heatmap`: a ``[layer, head]`` grid (retrieval scores, patching effects);
- :func:`compare_heatmaps`: several models' grids on one colour scale;
- :func:`recall_vs_performance`: head recall against downstream score, with a fitted line and
  Pearson's r and Spearman's rho;
- :func:`knockout_bars`: the score intact, with the retrieval heads knocked out, and with as many
  random heads knocked out (error bars over the random draws);
- :func:`patching_table`: Zhao et al.'s patching table;
- :func:`niah_grid_heatmap`: Wu et al.'s context-length x needle-depth grid;
- :func:`write_html`: one self-contained HTML page (plotly.js inlined, works offline).

>>> fig = head_heatmap([[0.0, 0.9], [0.3, 0.05]], title="retrieval scores")
>>> fig.data[0].z.tolist(), fig.data[0].customdata[0][1]
([[0.0, 0.9], [0.3, 0.05]], 'L0H1')
>>> fig = recall_vs_performance({"real": 1.0, "kv": 0.2, "mdqa": 0.6}, {"real": 0.8, "kv": 0.3, "mdqa": 0.5})
>>> round(fig.layout.meta["pearson_r"], 3), fig.layout.meta["spearman_rho"]
(0.993, 1.0)
"""

import html
import math
import os
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

__all__ = [
    "head_heatmap",
    "compare_heatmaps",
    "recall_vs_performance",
    "knockout_bars",
    "patching_table",
    "niah_grid_heatmap",
    "write_html",
    "SEQUENTIAL",
    "DIVERGING",
]

#: colour scale for scores (non-negative values)
SEQUENTIAL = "Viridis"
#: colour scale for effects, centred at 0 (red: negative, blue: positive)
DIVERGING = "RdBu"

_FONT = dict(family="Arial, Helvetica, sans-serif", size=13)


# --- input conversion -----------------------------------------------------------------------
def _to_numpy(value: Any) -> np.ndarray:
    """A float64 NumPy array from a tensor (any device or dtype), an array or nested lists."""
    if hasattr(value, "detach"):  # torch.Tensor, without importing torch here
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64)


def _layer_head(scores: Any, what: str = "scores") -> np.ndarray:
    """The ``[n_layers, n_heads]`` array behind ``scores``: a tensor, array or nested list, or an
    object carrying one as ``.scores`` (``HeadScores``), ``.effect`` (``PatchSweep``) or ``.delta``."""
    for attr in ("scores", "effect", "delta"):
        inner = getattr(scores, attr, None)
        if inner is not None and not isinstance(inner, (int, float)) and not callable(inner):
            scores = inner
            break
    try:
        arr = _to_numpy(scores)
    except (TypeError, ValueError) as e:
        raise TypeError(
            f"{what}: expected a [n_layers, n_heads] tensor, array or nested list, or an object with "
            f"a per-head .scores / .effect tensor (HeadScores, PatchSweep); got {type(scores).__name__} ({e})"
        ) from None
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"{what}: expected a non-empty [n_layers, n_heads] grid, got shape {arr.shape}; "
            "a single float (e.g. KnockoutEffect.delta) is not per head"
        )
    return arr


def _tick_step(n: int) -> int:
    """Tick every head or layer up to 16, every 2nd up to 32, then at most ~16 ticks."""
    if n <= 16:
        return 1
    if n <= 32:
        return 2
    return math.ceil(n / 16)


def _grid_labels(n_layers: int, n_heads: int) -> list[list[str]]:
    return [[f"L{l}H{h}" for h in range(n_heads)] for l in range(n_layers)]


def _auto_diverging(diverging: bool | None, values: Iterable[np.ndarray]) -> bool:
    if diverging is not None:
        return bool(diverging)
    return any(bool(np.nanmin(v) < 0) for v in values if v.size and not np.all(np.isnan(v)))


def _colour_range(arrays: Sequence[np.ndarray], diverging: bool, zmin: float | None, zmax: float | None) -> tuple[float, float]:
    """Sequential: ``[min(0, lowest), highest]``; diverging: symmetric ``[-m, m]`` around 0.
    An explicit ``zmin`` / ``zmax`` wins."""
    finite = np.concatenate([a[np.isfinite(a)].ravel() for a in arrays]) if arrays else np.zeros(0)
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 1.0
    if diverging:
        m = max(abs(lo), abs(hi)) or 1.0
        lo_auto, hi_auto = -m, m
    else:
        lo_auto = min(0.0, lo)
        hi_auto = hi if hi > lo_auto else lo_auto + 1.0
    return (lo_auto if zmin is None else float(zmin)), (hi_auto if zmax is None else float(zmax))


def _heatmap_trace(z: np.ndarray, value_name: str, **kw: Any) -> go.Heatmap:
    n_layers, n_heads = z.shape
    return go.Heatmap(
        z=z,
        x=list(range(n_heads)),
        y=list(range(n_layers)),
        customdata=_grid_labels(n_layers, n_heads),
        hovertemplate="%{customdata}<br>" + value_name + " = %{z:.3f}<extra></extra>",
        xgap=1 if n_heads <= 32 else 0,
        ygap=1 if n_layers <= 32 else 0,
        **kw,
    )


def _style_axes(fig: go.Figure, n_layers: int, n_heads: int, *, row: int | None = None, col: int | None = None,
                show_y_title: bool = True) -> None:
    where = {} if row is None else dict(row=row, col=col)
    fig.update_xaxes(title_text="head", tickmode="linear", tick0=0, dtick=_tick_step(n_heads),
                     showgrid=False, zeroline=False, constrain="domain", **where)
    fig.update_yaxes(title_text="layer" if show_y_title else None, tickmode="linear", tick0=0,
                     dtick=_tick_step(n_layers), autorange="reversed", showgrid=False, zeroline=False, **where)


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


def _ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given the mean of the ranks they span."""
    order = np.argsort(values, kind="mergesort")
    ranks = np.empty(len(values), dtype=np.float64)
    sorted_vals = values[order]
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((dx * dx).sum()) * float((dy * dy).sum()))
    return float((dx * dy).sum()) / denom if denom > 0 else float("nan")


def _fmt(v: float) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:.2f}"


def recall_vs_performance(recall: Mapping[str, float], performance: Mapping[str, float], *,
                          title: str | None = None) -> go.Figure:
    """Each variant's recall of the reference model's retrieval heads against its task score.

    Args:
        recall: ``{variant: recall}`` (e.g. ``HeadSet.recall`` of the real-data model's heads).
        performance: ``{variant: score}`` on the real task; the same keys as ``recall``.
        title: the figure's title (Pearson's r and Spearman's rho are appended).

    Points are labelled by variant; the line is the least-squares fit. Pearson's r, Spearman's rho
    (ranks with ties averaged), the fit's slope and intercept and ``n`` are in
    ``fig.layout.meta`` (NaN where undefined: fewer than 2 points, or no spread).

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
    r = _pearson(x, y)
    rho = _pearson(_ranks(x), _ranks(y))
    slope = intercept = float("nan")
    if len(x) >= 2 and float(((x - x.mean()) ** 2).sum()) > 0:
        slope = float(((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum())
        intercept = float(y.mean() - slope * x.mean())

    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=x, y=y, mode="markers+text", text=names, textposition="top center", name="variants",
        marker=dict(size=11, color="#1f77b4"),
        hovertemplate="%{text}<br>head recall = %{x:.3f}<br>score = %{y:.3f}<extra></extra>",
    ))
    if math.isfinite(slope):
        xs = np.array([x.min(), x.max()])
        fig.add_trace(go.Scatter(x=xs, y=slope * xs + intercept, mode="lines", name="least-squares fit",
                                 line=dict(color="#d62728", dash="dash"), hoverinfo="skip"))
    stats = f"Pearson r = {_fmt(r)}, Spearman \u03c1 = {_fmt(rho)} (n = {len(x)})"
    fig.update_layout(
        title=f"{title}<br><sup>{stats}</sup>" if title else stats,
        xaxis_title="recall of the reference model's retrieval heads",
        yaxis_title="score on the real task",
        font=_FONT, showlegend=False, width=640, height=480, plot_bgcolor="white",
        meta=dict(pearson_r=r, spearman_rho=rho, slope=slope, intercept=intercept, n=len(x)),
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


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


def knockout_bars(effects: Mapping[str, Mapping[str, Any]], *, title: str | None = None) -> go.Figure:
    """Grouped bars: the score intact, with the retrieval heads knocked out, and with random heads
    knocked out (bar: mean over the draws; error bar: their standard deviation).

    Args:
        effects: ``{group: {"baseline": float, "retrieval": float, "random": [float, ...]}}``,
            one group per model or task. ``"retrieval"`` and each ``"random"`` entry may be a
            :class:`rhlens.KnockoutEffect` (its ``knocked.score``; ``"baseline"`` then defaults to
            its ``baseline.score``) or an ``EvalResult``. A group may also be one
            ``KnockoutEffect`` that carries its random ``controls`` (``knockout_effect(...,
            n_random=5)``). A single group may be given without the outer mapping.
        title: the figure's title.

    The standard deviation is the sample one (``ddof=1``), 0 for a single draw. Each draw's score
    is also drawn as a dot, and listed on hover.

    >>> fig = knockout_bars({"kv": {"baseline": 0.9, "retrieval": 0.2, "random": [0.75, 1.0, 0.5]}})
    >>> [t.name for t in fig.data][:3], fig.data[2].y, fig.data[2].error_y.array
    (['intact', 'retrieval heads knocked out', 'random heads knocked out'], (0.75,), (0.25,))
    """
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
    stds = [float(np.std(d, ddof=1)) if len(d) > 1 else 0.0 for d in draws]
    fig = go.Figure()
    label = dict(texttemplate="%{y:.2f}", textposition="outside", cliponaxis=False)  # a 0.00 bar is still seen
    fig.add_trace(go.Bar(x=groups, y=baseline, name="intact", marker_color="#7f7f7f", offsetgroup="intact", **label,
                         hovertemplate="%{x}<br>intact: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(x=groups, y=retrieval, name="retrieval heads knocked out", marker_color="#d62728",
                         offsetgroup="retrieval", **label,
                         hovertemplate="%{x}<br>retrieval heads knocked out: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Bar(
        x=groups, y=means, name="random heads knocked out", marker_color="#1f77b4", offsetgroup="random",
        texttemplate="%{y:.2f}", textposition="inside", insidetextanchor="start",
        error_y=dict(type="data", array=stds, visible=True, color="#333"),
        customdata=[", ".join(f"{v:.3f}" for v in d) for d in draws],
        hovertemplate="%{x}<br>random heads knocked out: mean %{y:.3f}<br>draws: %{customdata}<extra></extra>",
    ))
    dot_x = [g for g, d in zip(groups, draws) for _ in d]
    dot_y = [v for d in draws for v in d]
    fig.add_trace(go.Scatter(x=dot_x, y=dot_y, mode="markers", name="each random draw",
                             offsetgroup="random",
                             marker=dict(color="black", size=6, symbol="circle-open"),
                             hovertemplate="%{x}<br>random draw: %{y:.3f}<extra></extra>"))
    fig.update_layout(
        barmode="group", scattermode="group", title=title, font=_FONT, plot_bgcolor="white",
        yaxis_title="score", height=460,  # width: the container's (a fixed one overflows notebook cells)
    )
    fig.update_yaxes(showgrid=True, gridcolor="#eee", rangemode="tozero")
    return fig


def patching_table(rows: Any, *, title: str | None = None) -> go.Figure:
    """A table figure of patching results (or any ``{row: {column: value}}`` numbers).

    Args:
        rows: ``{row name: {column: value}}`` (columns in first-seen order; a missing cell shows
            empty), or a :class:`rhlens.PatchingTable` (columns ``heads``, ``n heads``, ``score``,
            ``delta``).
        title: the figure's title.

    Floats are shown with 3 decimals.

    >>> fig = patching_table({"original": {"score": 0.5, "delta": 0.0}, "intersection": {"score": 0.75, "delta": 0.25}})
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
        raise ValueError("patching_table needs a non-empty mapping {row: {column: value}} or a PatchingTable")
    columns: list[str] = []
    for name, row in rows.items():
        if not isinstance(row, Mapping):
            raise TypeError(f"patching_table row {name!r}: expected a mapping {{column: value}}, got {type(row).__name__}")
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


# --- HTML -----------------------------------------------------------------------------------
_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: Arial, Helvetica, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }}
.figure {{ margin: 0.5em 0 1.5em 0; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; }}
</style>
<script type="text/javascript">{plotlyjs}</script>
</head>
<body>
<h1>{title}</h1>
{intro}
{sections}
</body>
</html>
"""


def write_html(figures: Sequence[tuple[str, Any]], path: "str | os.PathLike", *, title: str,
               intro: str | None = None) -> None:
    """Write one self-contained HTML page: ``title``, ``intro``, then a heading per figure.

    Args:
        figures: ``(heading, figure)`` pairs; a figure is a ``go.Figure`` or an HTML string
            (inserted as it is, e.g. a paragraph or a table).
        path: the file to write (atomically, via :mod:`rhlens.files`; parent folders are created).
        title: the page's title and first heading.
        intro: plain text under the title (escaped; blank lines separate paragraphs).

    plotly.js is inlined once (about 4.5 MB), so the page works offline.

    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "report.html"
    >>> write_html([("Scores", head_heatmap([[0.0, 1.0]]))], out, title="Demo", intro="One figure.")
    >>> text = out.read_text(encoding="utf-8")
    >>> "<h2>Scores</h2>" in text, "<script src=" in text, text.count("Plotly.newPlot")
    (True, False, 1)
    """
    import plotly.io as pio

    from rhlens.files import write_text_atomic

    sections = []
    for i, item in enumerate(figures):
        try:
            heading, fig = item
        except (TypeError, ValueError):
            raise TypeError(f"write_html: figures[{i}] must be a (heading, figure) pair, got {type(item).__name__}") from None
        if isinstance(fig, go.Figure):
            body = pio.to_html(fig, full_html=False, include_plotlyjs=False, div_id=f"figure-{i}",
                               config={"displaylogo": False, "responsive": True})
        elif isinstance(fig, str):
            body = fig
        else:
            raise TypeError(f"write_html: figures[{i}] ({heading!r}) must be a plotly Figure or an HTML string, "
                            f"got {type(fig).__name__}")
        sections.append(f'<h2>{html.escape(str(heading))}</h2>\n<div class="figure">{body}</div>')
    intro_html = ""
    if intro:
        intro_html = "\n".join(f"<p>{html.escape(p.strip())}</p>" for p in intro.split("\n\n") if p.strip())
    from plotly.offline import get_plotlyjs

    page = _PAGE.format(title=html.escape(title), intro=intro_html, sections="\n".join(sections),
                        plotlyjs=get_plotlyjs())
    write_text_atomic(path, page)
