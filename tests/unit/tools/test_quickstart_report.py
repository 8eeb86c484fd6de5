"""Issue 26 item 5, the quickstart's report: a summary first; each number with its 95% interval,
the metric and the examples it counts; the embedded base's engineered heads said; the knockout
whiskers labelled as the intervals they are."""

import json
import re

import pytest
import torch

from rhlens.evaluation import EvalResult
from rhlens.heads import HeadSet
from rhlens.interventions.results import KnockoutEffect
from rhlens.tools.quickstart_report import report_intervals, summary_lines, write_report
from rhlens.tools.study.report import embedded_base_design

N = 8
AFTER = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]


def _result(values):
    return EvalResult(per_example=torch.tensor(values), metric="best-subspan exact match (the mdqa default)")


def _effect():
    draws = [[1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0], [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]]
    return KnockoutEffect(baseline=_result(AFTER), knocked=_result([0.0] * 7 + [1.0]), heads=HeadSet(["L3H0", "L2H0"]),
                          mode="zero", controls=[_result(d) for d in draws],
                          control_heads=[HeadSet(["L0H1", "L0H2"]), HeadSet(["L1H1", "L1H2"])])


def _summary(effect):
    before = _result([0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    return {
        "task": "mdqa", "variant": "realistic", "context_tokens": 128, "fine_tuning_steps": 20,
        "metric": "best-subspan exact match (the mdqa default)", "n_eval": N,
        "intervals": report_intervals(before, effect.baseline, effect, seed=0),
        "examples_counted_for_retrieval_scores": 6, "retrieval_heads_over_0.1": {"L3H0": 1.0, "L2H0": 0.5},
        "heads_in_all": 48, "knockout_top_heads": {"heads": ["L2H0", "L3H0"], "mode": "zero"},
        "knockout_random_heads": {"draws": [{}, {}]}, "reading": "Knocking out the 2 retrieval heads drops the score.",
        "settings": {"steps": 20, "n_eval": N}, "report": "report.html",
    }


def test_intervals_are_over_the_held_out_examples_and_hold_their_estimates():
    effect = _effect()
    iv = _summary(effect)["intervals"]
    assert set(iv) == {"before", "after", "retrieval_heads_out", "retrieval_change", "random_heads_out", "random_change"}
    for name, interval in iv.items():
        assert interval["n"] == N and interval["over"] == "examples" and interval["level"] == 0.95, name
        assert interval["low"] <= interval["estimate"] <= interval["high"], name
    assert iv["after"]["estimate"] == pytest.approx(0.75) and iv["retrieval_heads_out"]["estimate"] == pytest.approx(0.125)
    # random: each example's mean over the two draws, then the mean over examples
    assert iv["random_heads_out"]["estimate"] == pytest.approx((5 / 8 + 4 / 8) / 2)
    assert iv["retrieval_change"]["estimate"] == pytest.approx(0.125 - 0.75)
    assert report_intervals(_result(AFTER), _result(AFTER), None).keys() == {"before", "after"}


def test_summary_says_metric_interval_and_examples_counted():
    lines = summary_lines(_summary(_effect()))
    assert lines[0].startswith(f"Score (best-subspan exact match (the mdqa default), mean over the {N} held-out examples): ")
    assert re.search(r"0\.75 \[\d\.\d\d, \d\.\d\d\] after 20 steps", lines[0])
    assert f"it counts 6 of the {N} examples" in lines[1]
    assert re.search(r"with the 2 retrieval heads out the score is 0\.12 \[.*\] \(change -0\.62 \[", lines[2])
    assert "on average over 2 draws" in lines[2] and lines[-1].startswith(f"Intervals: 95% bootstrap over the {N} held-out")


def test_report_opens_with_the_summary_and_labels_its_whiskers(tmp_path):
    effect = _effect()
    summary = _summary(effect)
    path = tmp_path / "report.html"
    write_report(path, summary, torch.rand(4, 12), effect)
    page = path.read_text(encoding="utf-8")
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings[0] == "Summary" and "Run" in headings
    design = embedded_base_design()
    assert design["engineered_retrieval_heads"] and "retrieval heads are engineered" in page
    assert all(h in page for h in design["engineered_retrieval_heads"]) and "true by construction" in page
    assert f"95% bootstrap interval over {N} examples" in page and f"6 of {N} examples counted" in page
    figures = [json.loads(m) for m in re.findall(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*(\[.*?\]),\s*\{", page, flags=re.S)]
    bars = next(f for f in figures if any(t.get("type") == "bar" for t in f))
    intact = next(t for t in bars if t.get("name") == "intact")
    low, high = summary["intervals"]["after"]["low"], summary["intervals"]["after"]["high"]
    assert intact["error_y"]["array"][0] == pytest.approx(high - 0.75) and intact["error_y"]["arrayminus"][0] == pytest.approx(0.75 - low)
