"""The README's main command, ``rhlens quickstart``, at tiny size, and its output folder checks."""

import json
import os

import pytest

from rhlens.cli import main
from rhlens.tools.quickstart import OutputFolderError, reading_of_knockouts, run_quickstart

TINY = dict(steps=4, n_eval=6, context_tokens=64, random_draws=2, progress=False)


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "qs"
    code = main(["quickstart", "--out", str(out), "--steps", "4", "--n-eval", "6", "--top-k", "2",
                 "--context-tokens", "64", "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fine_tuning_steps"] == 4
    over = summary["retrieval_heads_over_0.1"]
    assert all(v > 0.1 for v in over.values())
    assert list(over.values()) == sorted(over.values(), reverse=True)
    if summary["knockout_top_heads"] is None:  # no retrieval head after 4 steps: said, not faked
        assert not over and "No head scored over 0.1" in summary["reading"]
    else:
        knocked = summary["knockout_top_heads"]["heads"]
        assert 1 <= len(knocked) <= 2 and set(knocked) <= set(over)
        excluded = summary["knockout_random_heads"]["excluded"]  # the heads over 0.1, or (too few left) the knocked
        assert set(knocked) <= set(excluded) <= set(knocked) | set(over)
        for draw in summary["knockout_random_heads"]["draws"]:
            assert set(draw["heads"]).isdisjoint(excluded)
            assert len(draw["heads"]) == len(knocked)
    for key in ("score_before_fine_tuning", "score_after_fine_tuning"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["reading"].endswith(".")
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "retrieval_scores.safetensors").is_file()
    assert (out / "retrieval_scores_wu.json").is_file()
    report = (out / "report.html").read_text(encoding="utf-8")
    assert "Retrieval score of every head" in report and "Plotly.newPlot" in report
    assert json.loads((out / "run.json").read_text())["settings"]["steps"] == 4
    printed = capsys.readouterr()
    assert "Results written to" in printed.out
    lines = printed.out.strip().splitlines()
    headers = [line for line in lines if line.startswith("[")]  # issue 26 item 2: one header per stage
    assert [h.split("]")[0] for h in headers] == [f"[{i}/7" for i in range(1, 8)]
    for word, header in zip(("data", "evaluate", "fine-tune", "evaluate", "retrieval scores", "knockout", "controls"),
                            headers):
        assert header.split("] ")[1].startswith(word), header
    assert lines[-1] == f"Report: {(out / 'report.html').resolve()}"
    assert "thread" in printed.err  # what the threads were set to


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One tiny quickstart run (knocks out every head over 0.1) shared by the checks below."""
    out = tmp_path_factory.mktemp("qs") / "run"
    return out, run_quickstart(out, **TINY)


def test_quickstart_knocks_out_all_heads_over_threshold_against_random_draws(finished_run):
    out, summary = finished_run
    over = summary["retrieval_heads_over_0.1"]
    if not over:
        pytest.skip("no head over 0.1 after 4 steps with this base; covered by the no-head test")
    assert summary["knockout_top_heads"]["heads"] == sorted(over, key=lambda h: (int(h[1:].split("H")[0]), int(h.split("H")[1])))
    rand = summary["knockout_random_heads"]
    assert len(rand["draws"]) == 2 and all(len(d["heads"]) == len(over) for d in rand["draws"])  # as many as knocked
    if summary["heads_in_all"] - len(over) >= 2 * len(over):  # enough heads left: the controls avoid all of them
        assert set(rand["excluded"]) == set(over)
    scores = [d["score"] for d in rand["draws"]]
    assert rand["mean_score"] == pytest.approx(sum(scores) / 2, abs=1e-3)


def test_quickstart_rerun_of_same_settings_is_allowed(finished_run):
    out, summary = finished_run
    assert run_quickstart(out, **TINY)["score_after_fine_tuning"] == summary["score_after_fine_tuning"]


def test_quickstart_refuses_another_runs_folder_before_any_work(finished_run, monkeypatch):
    out, _ = finished_run
    import rhlens.models

    def fail():  # the check must come before the model is even loaded
        raise AssertionError("load_base called before --out was checked")

    monkeypatch.setattr(rhlens.models, "load_base", fail)
    before = (out / "summary.json").read_bytes()
    with pytest.raises(OutputFolderError, match="holds another run.*overwrite"):
        run_quickstart(out, **{**TINY, "seed": 1})
    assert (out / "summary.json").read_bytes() == before


def test_quickstart_refuses_bad_out_before_any_work(tmp_path, monkeypatch):
    import rhlens.models

    monkeypatch.setattr(rhlens.models, "load_base", lambda: (_ for _ in ()).throw(AssertionError("work started")))
    a_file = tmp_path / "file.txt"
    a_file.write_text("keep me")
    with pytest.raises(OutputFolderError, match="is a file"):
        run_quickstart(a_file, **TINY)
    with pytest.raises(OutputFolderError, match="which is a file"):
        run_quickstart(a_file / "sub", **TINY)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("x")
    with pytest.raises(OutputFolderError, match="not empty \\(mine.txt\\)"):
        run_quickstart(other, **TINY)
    assert a_file.read_text() == "keep me" and (other / "mine.txt").read_text() == "x"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(OutputFolderError, match="cannot be written"):
            run_quickstart(locked / "run", **TINY)


def test_quickstart_cli_reports_bad_out_in_one_line(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["quickstart", "--out", str(a_file), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "is a file" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_quickstart_top_k_zero_is_refused_clearly(tmp_path, top_k):
    with pytest.raises(ValueError, match="knocks out no head"):
        run_quickstart(tmp_path / "x", top_k=top_k, **TINY)
    assert not (tmp_path / "x").exists()


def test_quickstart_no_head_over_threshold_says_so(tmp_path, monkeypatch):
    import torch

    import rhlens.scoring
    from rhlens.scoring.results import HeadScores

    def no_retrieval(model, examples, **kw):
        n, l, h = len(examples), model.cfg.n_layers, model.cfg.n_heads
        return HeadScores(torch.zeros(n, l, h), torch.zeros(n, dtype=torch.bool))

    monkeypatch.setattr(rhlens.scoring, "retrieval_scores", no_retrieval)
    summary = run_quickstart(tmp_path / "run", **TINY)
    assert summary["knockout_top_heads"] is None and summary["knockout_random_heads"] is None
    assert summary["retrieval_heads_over_0.1"] == {}
    assert "No head scored over 0.1" in summary["reading"] and "no retrieval heads to knock out" in summary["reading"]
    assert "No head scored over 0.1" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_reading_of_knockouts_cases():
    assert "these heads are how the model finds the answer" in reading_of_knockouts(
        baseline=1.0, retrieval=0.3, random=[0.95, 1.0], n_heads=4)
    assert "retrieval heads (4 of 64 heads) drops" in reading_of_knockouts(
        baseline=1.0, retrieval=0.3, random=[0.95, 1.0], n_heads=4, n_total=64)
    assert reading_of_knockouts(baseline=1.0, retrieval=0.9, random=[0.2, 0.4], n_heads=4).startswith("Random heads hurt more")
    equal = reading_of_knockouts(baseline=1.0, retrieval=0.0, random=[0.0, 0.1], n_heads=7, n_total=16)
    assert "(7 of 16 heads)" in equal and "hurt about equally" in equal
    assert "no other heads" in reading_of_knockouts(baseline=1.0, retrieval=0.0, random=[], n_heads=16)
    assert reading_of_knockouts(baseline=0.9, retrieval=0.88, random=[0.9], n_heads=1).startswith("Neither knockout")
    assert "too low" in reading_of_knockouts(baseline=0.1, retrieval=0.0, random=[0.1], n_heads=2)
    mixed = reading_of_knockouts(baseline=1.0, retrieval=0.4, random=[0.5, 0.6], n_heads=3)
    assert "the random heads matter too" in mixed
