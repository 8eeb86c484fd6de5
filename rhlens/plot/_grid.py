"""Shared pieces of the figures: input conversion, colour ranges, layer x head grids and axes."""

import math
from typing import Any, Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

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
