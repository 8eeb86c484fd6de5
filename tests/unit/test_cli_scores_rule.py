"""``rhlens scores --rule`` and ``--gate``: the rules and gates of ``rhlens.retrieval_scores`` on the
command line and in the study config (issue 21 items 2 and 5)."""

import json

import pytest

from rhlens.cli import main


def _examples(tmp_path):
    examples = tmp_path / "ex.jsonl"
    assert main(["generate", "kv", "symbolic", "--n", "2", "--context-tokens", "64", "--out", str(examples)]) == 0
    return examples


def test_scores_rule_and_gate_reach_the_library(tmp_path, capsys):
    from rhlens.models import base_dir
    from rhlens.scoring import HeadScores

    examples = _examples(tmp_path)
    out = tmp_path / "s"
    assert main(["scores", "--model", str(base_dir() / "model"), "--examples", str(examples), "--out", str(out),
                 "--rule", "wu-literal", "--rouge-gate", "none", "--max-new-tokens", "4", "--no-progress"]) == 0
    assert json.loads((out / "scores.json").read_text())["rule"] == "wu-literal"
    assert HeadScores.load(out / "decode.safetensors").meta["rule"] == "wu-literal"
    out2 = tmp_path / "s2"
    assert main(["scores", "--model", str(base_dir() / "model"), "--examples", str(examples), "--out", str(out2),
                 "--gate", "exact", "--rouge-gate", "none", "--max-new-tokens", "4", "--no-progress"]) == 0
    assert HeadScores.load(out2 / "decode.safetensors").meta["gate"] == "exact"


@pytest.mark.parametrize("args, needle", [(["--rule", "wu"], "rule must be one of"),
                                          (["--rule", "wu-literal", "--method", "both"], "method='decode'"),
                                          (["--rule", "wu-literal", "--gate", "exact"], "gate='rouge'"),
                                          (["--gate", "squad"], "gate must be one of")])
def test_bad_rule_or_gate_is_refused_before_anything_is_written(tmp_path, capsys, args, needle):
    out = tmp_path / "o"
    assert main(["scores", "--model", "never-loaded", "--examples", "x.jsonl", "--out", str(out), *args]) == 2
    assert needle in capsys.readouterr().err and not out.exists()


def test_study_config_takes_the_rule_and_gate(tmp_path):
    from dataclasses import replace

    from rhlens.tools.study import StudyConfig

    tiny = StudyConfig.preset("tiny")
    literal = tiny.replace(scores=replace(tiny.scores, rule="wu-literal", methods=("decode",)))
    assert literal.scores.rule == "wu-literal" and tiny.scores.rule == "rhlens"
    for bad, needle in [(dict(rule="wu"), "[scores] rule"), (dict(rule="wu-literal"), 'methods = ["decode"]'),
                        (dict(gate="squad"), "[scores] gate")]:
        with pytest.raises(ValueError, match=r"\[scores\]") as info:
            tiny.replace(scores=replace(tiny.scores, **bad))
        assert needle in str(info.value)
