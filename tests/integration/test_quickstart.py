"""The README's main command, ``rhlens quickstart``, at tiny size."""

import json

from rhlens.cli import main


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    out = tmp_path / "qs"
    code = main(["quickstart", "--out", str(out), "--steps", "4", "--n-eval", "6", "--top-k", "2",
                 "--context-tokens", "64", "--no-progress"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fine_tuning_steps"] == 4
    assert len(summary["top_retrieval_heads"]) <= 2
    assert set(summary["knockout_top_heads"]["heads"]).isdisjoint(summary["knockout_random_heads"]["heads"])
    for key in ("score_before_fine_tuning", "score_after_fine_tuning"):
        assert 0.0 <= summary[key] <= 1.0
    assert (out / "model" / "model.safetensors").is_file()
    assert (out / "retrieval_scores_wu.json").is_file()
    assert "Results written to" in capsys.readouterr().out
