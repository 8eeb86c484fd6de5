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
  random heads knocked out (whiskers: the range of the random draws, or given intervals);
- :func:`knockout_curves_figure`: the metric as each detector's top-k heads are knocked out,
  against random heads;
- :func:`patching_table_figure`: Zhao et al.'s patching table (the analysis is :func:`rhlens.patching_table`);
- :func:`score_bars`: a score per group (accuracy by training set) with interval whiskers;
- :func:`niah_grid_heatmap`: Wu et al.'s context-length x needle-depth grid;
- :func:`write_html`: one self-contained HTML page (plotly.js inlined, works offline).

>>> fig = head_heatmap([[0.0, 0.9], [0.3, 0.05]], title="retrieval scores")
>>> fig.data[0].z.tolist(), fig.data[0].customdata[0][1]
([[0.0, 0.9], [0.3, 0.05]], 'L0H1')
>>> fig = recall_vs_performance({"real": 1.0, "kv": 0.2, "mdqa": 0.6}, {"real": 0.8, "kv": 0.3, "mdqa": 0.5})
>>> round(fig.layout.meta["pearson_r"], 3), fig.layout.meta["spearman_rho"]
(0.993, 1.0)
"""

from rhlens.plot._grid import DIVERGING, SEQUENTIAL
from rhlens.plot.bars import score_bars
from rhlens.plot.detectors import knockout_curves_figure
from rhlens.plot.heatmaps import compare_heatmaps, head_heatmap, niah_grid_heatmap
from rhlens.plot.knockout import knockout_bars, patching_table_figure
from rhlens.plot.page import write_html
from rhlens.plot.recall import recall_vs_performance

__all__ = [
    "head_heatmap",
    "compare_heatmaps",
    "recall_vs_performance",
    "knockout_bars",
    "knockout_curves_figure",
    "patching_table_figure",
    "score_bars",
    "niah_grid_heatmap",
    "write_html",
    "SEQUENTIAL",
    "DIVERGING",
]

