"""rhlens.plot: the figures' data (z, hover labels, axes, colour scales, fits), not their pixels.

The reference statistics (least squares, Pearson's r, Spearman's rho with tied ranks averaged) are
computed here with plain Python, sharing no code with rhlens.plot.
"""

import math
import re

import numpy as np
import plotly.colors
import plotly.graph_objects as go
import pytest
import torch

from rhlens import plot
from rhlens.heads import HeadSet
from rhlens.interventions.results import EvalResult, KnockoutEffect, PatchingRow, PatchingTable, PatchSweep
from rhlens.scoring.results import HeadScores


def _scale(name: str) -> list[str]:
    """The colours of a named plotly scale, as a figure stores them."""
    return [c for _, c in plotly.colors.get_colorscale(name)]


def _colours(trace_scale) -> list[str]:
    return [c for _, c in trace_scale]


# --- head_heatmap ---------------------------------------------------------------------------
def test_head_heatmap_z_equals_input_and_hover_labels():
    z = torch.rand(3, 5)
    fig = plot.head_heatmap(z, title="scores")
    assert isinstance(fig, go.Figure)
    t = fig.data[0]
    np.testing.assert_allclose(np.asarray(t.z), z.numpy(), rtol=0, atol=1e-7)
    assert list(t.x) == list(range(5)) and list(t.y) == list(range(3))
    assert t.customdata[2][4] == "L2H4" and t.customdata[0][0] == "L0H0"
    assert "%{customdata}" in t.hovertemplate and "%{z" in t.hovertemplate
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    assert fig.layout.title.text == "scores"
    assert fig.layout.yaxis.autorange == "reversed"  # layer 0 at the top


def test_head_heatmap_sequential_for_scores():
    z = [[0.0, 0.25], [0.5, 0.8]]
    t = plot.head_heatmap(z).data[0]
    assert _colours(t.colorscale) == _scale("Viridis")
    assert (t.zmin, t.zmax) == (0.0, 0.8)
    assert t.zmid is None
    assert t.colorbar.title.text == "score"


def test_head_heatmap_diverging_centred_for_effects():
    z = np.array([[0.2, -0.6], [0.1, 0.0]])
    t = plot.head_heatmap(z).data[0]
    assert _colours(t.colorscale) == _scale("RdBu")
    assert t.zmid == 0.0 and (t.zmin, t.zmax) == (-0.6, 0.6)
    assert t.colorbar.title.text == "effect"
    # forced either way, and explicit ranges win
    assert _colours(plot.head_heatmap(z, diverging=False).data[0].colorscale) == _scale("Viridis")
    t2 = plot.head_heatmap([[0.1, 0.3]], diverging=True, zmin=-1, zmax=2).data[0]
    assert _colours(t2.colorscale) == _scale("RdBu") and (t2.zmin, t2.zmax) == (-1.0, 2.0)


def test_head_heatmap_accepts_result_objects():
    per_example = torch.tensor([[[0.0, 1.0], [0.5, 0.0]], [[0.0, 0.5], [0.0, 0.0]]])
    hs = HeadScores(per_example=per_example, counted=torch.tensor([True, True]))
    np.testing.assert_allclose(np.asarray(plot.head_heatmap(hs).data[0].z), [[0.0, 0.75], [0.25, 0.0]])
    sweep = PatchSweep(baseline=torch.tensor([0.0, 1.0]), patched=torch.tensor([[[1.0, 1.0], [0.0, 0.0]]]))
    fig = plot.head_heatmap(sweep)
    np.testing.assert_allclose(np.asarray(fig.data[0].z), [[0.5, -0.5]])
    assert fig.data[0].zmid == 0.0


def test_head_heatmap_readable_at_32_by_32():
    fig = plot.head_heatmap(torch.rand(32, 32))
    x, y = fig.layout.xaxis, fig.layout.yaxis
    assert x.tickmode == "linear" and x.dtick == 2 and y.dtick == 2  # 16 labels per axis
    assert fig.layout.width >= 24 * 32 and fig.layout.height >= 22 * 32
    assert plot.head_heatmap(torch.rand(2, 8)).layout.xaxis.dtick == 1


@pytest.mark.parametrize("bad", [0.3, [1.0, 2.0], [[[1.0]]], [[]]])
def test_head_heatmap_refuses_non_grids(bad):
    with pytest.raises((ValueError, TypeError), match="n_layers, n_heads"):
        plot.head_heatmap(bad)


def test_head_heatmap_refuses_a_knockout_effect_scalar():
    eff = KnockoutEffect(EvalResult(torch.tensor([1.0])), EvalResult(torch.tensor([0.0])), HeadSet(["L0H0"]), "zero")
    with pytest.raises((ValueError, TypeError), match="n_layers, n_heads"):
        plot.head_heatmap(eff)


# --- compare_heatmaps -----------------------------------------------------------------------
def test_compare_heatmaps_one_shared_colour_scale():
    a = [[0.0, 0.5], [0.2, 0.1]]
    b = torch.tensor([[0.9, 0.0], [0.0, 0.3]])
    fig = plot.compare_heatmaps({"real": a, "synthetic": b}, title="two models")
    assert len(fig.data) == 2
    np.testing.assert_allclose(np.asarray(fig.data[0].z), a)
    np.testing.assert_allclose(np.asarray(fig.data[1].z), b.numpy())
    assert all(t.coloraxis == "coloraxis" for t in fig.data)
    ca = fig.layout.coloraxis
    assert (ca.cmin, ca.cmax) == (0.0, pytest.approx(0.9))
    assert _colours(ca.colorscale) == _scale("Viridis")
    assert [a.text for a in fig.layout.annotations] == ["real", "synthetic"]
    assert fig.data[1].customdata[1][0] == "L1H0"


def test_compare_heatmaps_diverging_and_explicit_range():
    fig = plot.compare_heatmaps({"a": [[-0.5, 0.1]], "b": [[0.2, 0.25]]})
    ca = fig.layout.coloraxis
    assert _colours(ca.colorscale) == _scale("RdBu") and ca.cmid == 0.0 and (ca.cmin, ca.cmax) == (-0.5, 0.5)
    ca2 = plot.compare_heatmaps({"a": [[0.1]]}, zmin=0, zmax=1).layout.coloraxis
    assert (ca2.cmin, ca2.cmax) == (0.0, 1.0)
    with pytest.raises(ValueError, match="non-empty"):
        plot.compare_heatmaps({})


# --- recall_vs_performance ------------------------------------------------------------------
def _ref_ranks(values):
    """Average ranks from 1, by comparing every pair (an O(n^2) reference)."""
    out = []
    for v in values:
        below = sum(1 for w in values if w < v)
        equal = sum(1 for w in values if w == v)
        out.append(below + (equal + 1) / 2)
    return out


def _ref_pearson(x, y):
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx = sum((a - mx) ** 2 for a in x)
    syy = sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy)


def test_recall_vs_performance_fit_r_rho_labels():
    recall = {"real": 1.0, "mdqa-realistic": 0.8, "mdqa-symbolic": 0.4, "kv": 0.4, "repeated": 0.1}
    perf = {"real": 0.9, "mdqa-realistic": 0.7, "mdqa-symbolic": 0.5, "kv": 0.3, "repeated": 0.3}
    fig = plot.recall_vs_performance(recall, perf, title="head recall predicts accuracy")
    names = list(recall)
    x = [recall[n] for n in names]
    y = [perf[n] for n in names]
    pts = fig.data[0]
    assert list(pts.text) == names
    np.testing.assert_allclose(pts.x, x) and np.testing.assert_allclose(pts.y, y)
    meta = fig.layout.meta
    r = _ref_pearson(x, y)
    rho = _ref_pearson(_ref_ranks(x), _ref_ranks(y))
    assert meta["pearson_r"] == pytest.approx(r, abs=1e-12)
    assert meta["spearman_rho"] == pytest.approx(rho, abs=1e-12)
    assert meta["n"] == 5
    # least-squares line, from the normal equations
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    intercept = my - slope * mx
    line = fig.data[1]
    assert line.mode == "lines"
    np.testing.assert_allclose(line.x, [min(x), max(x)])
    np.testing.assert_allclose(line.y, [slope * min(x) + intercept, slope * max(x) + intercept])
    # the title states both, to 2 decimals
    text = fig.layout.title.text
    assert "head recall predicts accuracy" in text
    assert f"r = {r:.2f}" in text and f"\u03c1 = {rho:.2f}" in text
    assert fig.layout.xaxis.title.text and fig.layout.yaxis.title.text


def test_recall_vs_performance_degenerate_and_mismatched():
    fig = plot.recall_vs_performance({"a": 0.5, "b": 0.5}, {"a": 0.1, "b": 0.9})
    assert math.isnan(fig.layout.meta["pearson_r"]) and len(fig.data) == 1  # no spread: no line
    assert "n/a" in fig.layout.title.text
    with pytest.raises(ValueError, match="only in one of them: \\['c'\\]"):
        plot.recall_vs_performance({"a": 1.0, "c": 0.2}, {"a": 0.5})


# --- knockout_bars --------------------------------------------------------------------------
def test_knockout_bars_plain_numbers():
    effects = {
        "mdqa": {"baseline": 0.9, "retrieval": 0.2, "random": [0.85, 0.9, 0.8, 0.88]},
        "kv": {"baseline": 1.0, "retrieval": 0.1, "random": [1.0]},
    }
    fig = plot.knockout_bars(effects, title="knockouts")
    intact, retrieval, random, dots = fig.data
    assert list(intact.x) == ["mdqa", "kv"]
    np.testing.assert_allclose(intact.y, [0.9, 1.0])
    np.testing.assert_allclose(retrieval.y, [0.2, 0.1])
    d = effects["mdqa"]["random"]
    mean = sum(d) / len(d)
    np.testing.assert_allclose(random.y, [mean, 1.0])
    # the whisker runs from the lowest to the highest draw (never past every draw), and says so
    assert random.error_y.visible
    np.testing.assert_allclose(random.error_y.array, [max(d) - mean, 0.0])
    np.testing.assert_allclose(random.error_y.arrayminus, [mean - min(d), 0.0])
    assert "lowest to highest draw" in fig.layout.title.text
    np.testing.assert_allclose(dots.y, [0.85, 0.9, 0.8, 0.88, 1.0])
    assert list(dots.x) == ["mdqa"] * 4 + ["kv"]
    assert fig.layout.barmode == "group" and fig.layout.yaxis.title.text == "score"


def test_a_knockout_to_zero_still_says_its_value():
    """A bar at 0.00 had its label inside it, so the knocked-out bar showed nothing at all."""
    fig = plot.knockout_bars({"mdqa": {"baseline": 0.9, "retrieval": 0.0, "random": [0.8, 0.9]},
                              "kv": {"baseline": 1.0, "retrieval": 0.5, "random": [1.0]}})
    intact, retrieval, random, _ = fig.data
    assert list(retrieval.textposition) == ["outside", "inside"]
    assert list(intact.textposition) == list(random.textposition) == ["inside", "inside"]
    assert retrieval.texttemplate == "%{y:.2f}" and retrieval.cliponaxis is False


def test_knockout_bars_accepts_knockout_effects():
    base = EvalResult(torch.tensor([1.0, 1.0, 0.0, 1.0]))

    def eff(scores):
        return KnockoutEffect(base, EvalResult(torch.tensor(scores)), HeadSet(["L0H0"]), "zero")

    fig = plot.knockout_bars({"model": {"retrieval": eff([0.0, 0.0, 0.0, 1.0]),
                                        "random": [eff([1.0, 1.0, 0.0, 1.0]), eff([1.0, 0.0, 0.0, 1.0])]}})
    np.testing.assert_allclose(fig.data[0].y, [0.75])
    np.testing.assert_allclose(fig.data[1].y, [0.25])
    np.testing.assert_allclose(fig.data[2].y, [0.625])
    # one KnockoutEffect carrying its random controls is a group of its own
    with_controls = KnockoutEffect(base, EvalResult(torch.tensor([0.0, 0.0, 0.0, 0.0])), HeadSet(["L0H0"]), "zero",
                                   controls=[EvalResult(torch.tensor([1.0, 1.0, 1.0, 0.0])),
                                             EvalResult(torch.tensor([1.0, 0.0, 1.0, 0.0]))])
    fig2 = plot.knockout_bars({"a": with_controls})
    np.testing.assert_allclose([fig2.data[0].y[0], fig2.data[1].y[0], fig2.data[2].y[0]], [0.75, 0.0, 0.625])
    np.testing.assert_allclose(fig2.data[3].y, [0.75, 0.5])
    # a single group without the outer mapping
    single = plot.knockout_bars({"baseline": 0.5, "retrieval": 0.1, "random": [0.4, 0.5]})
    np.testing.assert_allclose(single.data[2].y, [0.45])
    with pytest.raises(ValueError, match="'random'"):
        plot.knockout_bars({"x": {"baseline": 1.0, "retrieval": 0.5}})


def test_knockout_bars_with_intervals_label_them_on_every_bar():
    effects = {"m": {"baseline": 0.8, "retrieval": 0.1, "random": [0.7, 0.8]}}
    ivs = {"m": {"baseline": (0.7, 0.9), "retrieval": (0.0, 0.2), "random": (0.6, 0.85)}}
    fig = plot.knockout_bars(effects, intervals=ivs, interval_label="95% bootstrap interval", title="ko")
    intact, retrieval, random = fig.data[:3]
    np.testing.assert_allclose([intact.error_y.array[0], intact.error_y.arrayminus[0]], [0.1, 0.1])
    np.testing.assert_allclose([retrieval.error_y.array[0], retrieval.error_y.arrayminus[0]], [0.1, 0.1])
    np.testing.assert_allclose([random.error_y.array[0], random.error_y.arrayminus[0]], [0.1, 0.15])
    assert "95% bootstrap interval" in fig.layout.title.text


def test_a_short_bar_with_a_whisker_says_its_value_above_the_whisker():
    """A 0.04 bar's label sat just above the bar, on its whisker, where neither could be read."""
    effects = {"m": {"baseline": 0.8, "retrieval": 0.04, "random": [0.7, 0.8]}}
    ivs = {"m": {"baseline": (0.7, 0.9), "retrieval": (0.0, 0.12), "random": (0.6, 0.85)}}
    fig = plot.knockout_bars(effects, intervals=ivs)
    retrieval = fig.data[1]
    assert list(retrieval.textposition) == ["none"]
    above = [t for t in fig.data if t.type == "scatter" and t.mode == "text"]
    assert len(above) == 1 and above[0].offsetgroup == "retrieval" and list(above[0].text) == ["0.04"]
    np.testing.assert_allclose(above[0].y, [0.12])  # the whisker's top
    bars = plot.score_bars({"real": 0.8, "symbolic": 0.02}, {"real": (0.7, 0.9), "symbolic": (0.0, 0.06)})
    assert list(bars.data[0].textposition) == ["inside", "none"] and list(bars.data[1].text) == ["0.02"]
    np.testing.assert_allclose(bars.data[1].y, [0.06])


def test_score_bars_whiskers_from_intervals():
    fig = plot.score_bars({"real": 0.8, "fictional": 0.6}, {"real": (0.7, 0.95), "fictional": (0.4, 0.7)},
                          title="accuracy", yaxis_title="accuracy (EM)", highlight="real")
    bar = fig.data[0]
    np.testing.assert_allclose(bar.error_y.array, [0.15, 0.1])
    np.testing.assert_allclose(bar.error_y.arrayminus, [0.1, 0.2])
    assert bar.marker.color[0] != bar.marker.color[1] and "95% interval" in fig.layout.title.text
    with pytest.raises(ValueError, match="at least one"):
        plot.score_bars({})


def test_recall_axis_stops_at_one_and_intervals_show_on_both_axes():
    recall = {"a": 1.0, "b": 0.5, "c": 0.0}
    fig = plot.recall_vs_performance(recall, {"a": 0.9, "b": 0.5, "c": 0.2},
                                     intervals={"a": {"recall": (0.9, 1.0), "performance": (0.8, 1.0)}})
    assert fig.layout.xaxis.range[1] <= 1.05 and max(fig.layout.xaxis.tickvals) == 1
    pts = fig.data[0]
    np.testing.assert_allclose(pts.error_x.arrayminus, [0.1, 0.0, 0.0])
    np.testing.assert_allclose(pts.error_y.array, [0.1, 0.0, 0.0])
    assert "whiskers" in fig.layout.title.text


# --- patching_table -------------------------------------------------------------------------
def test_patching_table_from_mapping_and_result():
    fig = plot.patching_table_figure({"original": {"score": 0.4, "delta": 0.0},
                               "intersection": {"score": 0.55, "delta": 0.15, "n": 3}}, title="patching")
    t = fig.data[0]
    assert isinstance(t, go.Table)
    assert list(t.header.values) == ["", "score", "delta", "n"]
    assert [list(c) for c in t.cells.values] == [["original", "intersection"], ["0.400", "0.550"],
                                                 ["0.000", "0.150"], ["", "3"]]
    table = PatchingTable(rows=[PatchingRow("original", HeadSet(), 0.4, 0.0),
                                PatchingRow("complement", HeadSet(["L1H2", "L0H1"]), 0.5, 0.1, [0.5])])
    t2 = plot.patching_table_figure(table).data[0]
    cols = dict(zip(t2.header.values, t2.cells.values))
    assert list(cols[""]) == ["original", "complement"]
    assert list(cols["heads"]) == ["-", "L0H1 L1H2"]
    assert list(cols["delta"]) == ["0.000", "0.100"]


# --- niah_grid_heatmap ----------------------------------------------------------------------
def test_niah_grid_heatmap_orientation_and_labels():
    grid = [[1.0, 0.5, 0.0], [0.25, 0.75, 1.0]]  # [length, depth]
    fig = plot.niah_grid_heatmap(grid, lengths=[64, 128], depths=[0.0, 0.5, 1.0], title="NIAH")
    t = fig.data[0]
    np.testing.assert_allclose(np.asarray(t.z), np.array(grid).T)
    assert list(t.x) == ["64", "128"] and list(t.y) == ["0%", "50%", "100%"]
    assert fig.layout.xaxis.title.text == "context length (tokens)"
    assert fig.layout.yaxis.title.text == "needle depth"
    flat = plot.niah_grid_heatmap([1.0, 0.5, 0.0, 0.25, 0.75, 1.0], [64, 128], [0.0, 0.5, 1.0]).data[0]
    np.testing.assert_allclose(np.asarray(flat.z), np.array(grid).T)
    with pytest.raises(ValueError, match="transposed"):
        plot.niah_grid_heatmap(np.array(grid).T, [64, 128], [0.0, 0.5, 1.0])


# --- write_html -----------------------------------------------------------------------------
def test_write_html_self_contained(tmp_path):
    out = tmp_path / "sub" / "report.html"
    figs = [("Retrieval scores", plot.head_heatmap([[0.0, 1.0]])),
            ("A <note>", "<p id='note'>plain html</p>"),
            ("Knockout", plot.knockout_bars({"kv": {"baseline": 1, "retrieval": 0, "random": [1, 0.9]}}))]
    plot.write_html(figs, out, title="Quick & start", intro="First paragraph.\n\nSecond <b>.")
    text = out.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert "<title>Quick &amp; start</title>" in text
    assert "<h2>Retrieval scores</h2>" in text and "<h2>A &lt;note&gt;</h2>" in text
    assert "<p id='note'>plain html</p>" in text
    assert "<p>Second &lt;b&gt;.</p>" in text
    assert not re.search(r"<script[^>]+src=", text)  # nothing loaded from the network
    assert text.count("Plotly.newPlot") == 2
    assert len(text) > 1_000_000  # plotly.js inlined
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary file left


def test_write_html_refuses_bad_items(tmp_path):
    with pytest.raises(TypeError, match="figures\\[0\\]"):
        plot.write_html([("x", 3)], tmp_path / "a.html", title="t")
    with pytest.raises(TypeError, match="pair"):
        plot.write_html([plot.head_heatmap([[1.0]])], tmp_path / "a.html", title="t")
    assert not (tmp_path / "a.html").exists()


# --- .plot() shortcuts on result objects -----------------------------------------------------
def test_result_objects_plot_themselves():
    hs = HeadScores(per_example=torch.tensor([[[0.0, 1.0], [0.5, 0.0]]]), counted=torch.tensor([True]))
    np.testing.assert_allclose(np.asarray(hs.plot(title="t").data[0].z), [[0.0, 1.0], [0.5, 0.0]])
    sweep = PatchSweep(baseline=torch.tensor([0.0]), patched=torch.tensor([[[0.5], [-0.25]]]))
    fig = sweep.plot()
    np.testing.assert_allclose(np.asarray(fig.data[0].z), [[0.5, -0.25]])
    assert fig.data[0].zmid == 0.0
    base = EvalResult(torch.tensor([1.0, 1.0]))
    eff = KnockoutEffect(base, EvalResult(torch.tensor([0.0, 1.0])), HeadSet(["L0H0"]), "zero",
                         controls=[EvalResult(torch.tensor([1.0, 1.0]))])
    bars = eff.plot(name="m")
    np.testing.assert_allclose([bars.data[0].y[0], bars.data[1].y[0], bars.data[2].y[0]], [1.0, 0.5, 1.0])
    table = PatchingTable(rows=[PatchingRow("original", HeadSet(), 0.4, 0.0)])
    assert list(table.plot().data[0].cells.values[0]) == ["original"]


def test_a_score_bar_at_zero_still_says_its_value():
    fig = plot.score_bars({"real": 0.54, "symbolic": 0.0}, {"real": (0.4, 0.66), "symbolic": (0.0, 0.0)})
    assert list(fig.data[0].textposition) == ["inside", "outside"]
