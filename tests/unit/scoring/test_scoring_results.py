"""HeadScores: means over counted examples, head sets, GQA groups, Wu JSON, files, DataFrame."""

import json

import pytest
import torch

from rhlens.heads import HeadSet
from rhlens.scoring import HeadScores, RetrievalTrials


def build_scores(**overrides) -> HeadScores:
    per_example = torch.tensor([
        [[0.0, 1.0, 0.2, 0.0], [0.5, 0.0, 0.0, 0.3]],
        [[0.0, 0.5, 0.0, 0.0], [0.0, 0.0, 0.1, 0.3]],
        [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]],
    ])
    trials = RetrievalTrials(responses=["a", "b", "c"], hits=(per_example * 10).long(),
                             answer_tokens=torch.tensor([10, 10, 10]), rouge=torch.tensor([1.0, 0.75, 0.0]))
    fields = dict(per_example=per_example, counted=torch.tensor([True, True, False]), trials=trials, n_kv_heads=2,
                  meta={"method": "decode", "top_k": 1})
    fields.update(overrides)
    return HeadScores(**fields)


def test_scores_average_counted_examples_only():
    hs = build_scores()
    expected = torch.tensor([[0.0, 0.75, 0.1, 0.0], [0.25, 0.0, 0.05, 0.3]])
    torch.testing.assert_close(hs.scores, expected)
    assert (hs.n_examples, hs.n_layers, hs.n_heads, hs.n_counted) == (3, 2, 4, 2)
    none = build_scores(counted=torch.zeros(3, dtype=torch.bool))
    assert none.scores.equal(torch.zeros(2, 4))


def test_head_sets():
    hs = build_scores()
    assert hs.top(2) == HeadSet(["L0H1", "L1H3"])
    assert hs.above() == HeadSet(["L0H1", "L1H0", "L1H3"])
    assert hs.above(0.5) == HeadSet(["L0H1"])


def test_top_leaves_out_zero_scores_unless_asked():
    hs = build_scores()  # 5 of 8 heads score above 0
    assert hs.top(8) == HeadSet(["L0H1", "L0H2", "L1H0", "L1H2", "L1H3"])
    assert len(hs.top(8, include_zero=True)) == 8
    none = build_scores(counted=torch.zeros(3, dtype=torch.bool))
    assert none.top(3) == HeadSet() and len(none.top(3, include_zero=True)) == 3


def test_recall_against_a_reference():
    hs = build_scores()  # above 0.1: L0H1, L1H0, L1H3; top 2: L0H1, L1H3
    assert hs.recall(["L0H1", "L0H0"]) == 0.5
    assert hs.recall(HeadSet(["L1H0", "L1H3"]), k=2) == 0.5
    with pytest.raises(ValueError, match="empty reference is undefined"):
        hs.recall([])


def test_repr_lists_heads_by_score_and_says_when_nothing_counted():
    text = repr(build_scores())
    assert "2/3 examples counted" in text
    assert "L0H1=0.750, L1H3=0.300, L1H0=0.250, L0H2=0.100, L1H2=0.050, 3 at 0" in text
    none = repr(build_scores(counted=torch.zeros(3, dtype=torch.bool), meta={"method": "decode", "rouge_gate": 0.5}))
    assert "0/3 examples counted" in none and "no example passed the gate (answer ROUGE-1 recall > 0.5)" in none


def test_by_kv_group():
    hs = build_scores()
    torch.testing.assert_close(hs.by_kv_group("max"), torch.tensor([[0.75, 0.1], [0.25, 0.3]]))
    torch.testing.assert_close(hs.by_kv_group("mean"), torch.tensor([[0.375, 0.05], [0.125, 0.175]]))
    # rhlens's own check, or the test suite's runtime type checker (Literal['max', 'mean']) first
    with pytest.raises((ValueError, TypeError), match="reduce"):
        hs.by_kv_group("sum")
    with pytest.raises(ValueError, match="n_kv_heads"):
        build_scores(n_kv_heads=None).by_kv_group()
    with pytest.raises(ValueError, match="multiple"):
        build_scores(n_kv_heads=3)


def test_wu_json_round_trip(tmp_path):
    hs = build_scores()
    data = hs.to_wu_json()
    assert list(data)[:3] == ["0-0", "0-1", "0-2"] and data["0-1"] == [1.0, 0.5]  # counted trials only
    path = tmp_path / "head_score.json"
    path.write_text(json.dumps(data))
    back = HeadScores.from_wu_json(path)
    torch.testing.assert_close(back.scores, hs.scores)
    assert back.n_counted == 2 and back.trials is None
    with pytest.raises(ValueError, match="missing"):
        HeadScores.from_wu_json({"0-0": [1.0], "1-1": [0.0]})
    with pytest.raises(ValueError, match="different numbers of trials"):
        HeadScores.from_wu_json({"0-0": [1.0], "0-1": [0.0, 1.0]})
    with pytest.raises(ValueError, match="not '<layer>-<head>'"):
        HeadScores.from_wu_json({"zero": [1.0]})


def test_save_load_round_trip(tmp_path):
    hs = build_scores()
    path = hs.save(tmp_path / "sub" / "scores.safetensors")
    assert [p.name for p in path.parent.iterdir()] == ["scores.safetensors"]  # no temporary left
    back = HeadScores.load(path)
    assert back.per_example.equal(hs.per_example) and back.counted.equal(hs.counted)
    assert back.meta == hs.meta and back.n_kv_heads == 2
    got, want = back.trials, hs.trials
    assert got.responses == want.responses and got.hits.equal(want.hits)
    assert got.rouge.equal(want.rouge) and got.answer_tokens.equal(want.answer_tokens)


def test_scores_without_trials_count_every_example_and_round_trip(tmp_path):
    hs = HeadScores(per_example=torch.tensor([[[0.2, 0.4]], [[0.6, 0.0]]]), meta={"detector": "mass"})
    assert hs.n_counted == 2 and hs.trials is None
    torch.testing.assert_close(hs.scores, torch.tensor([[0.4, 0.2]]))
    back = HeadScores.load(hs.save(tmp_path / "mass.safetensors"))
    assert back.trials is None and back.per_example.equal(hs.per_example) and back.meta == {"detector": "mass"}


def test_load_rejects_other_files(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="not a HeadScores file"):
        HeadScores.load(tmp_path / "other.safetensors")


def test_dataframe():
    pytest.importorskip("pandas")
    df = build_scores().to_dataframe()
    assert list(df.columns) == ["layer", "head", "label", "kv_head", "score"]
    assert len(df) == 8 and df.iloc[0]["label"] == "L0H1" and df.iloc[0]["kv_head"] == 0


def test_shape_errors():
    with pytest.raises(ValueError, match="responses has 2"):
        build_scores(trials=RetrievalTrials(responses=["a", "b"]))
    with pytest.raises((ValueError, TypeError), match=r"\[example, layer, head\]|parameter 'per_example'"):
        build_scores(per_example=torch.zeros(3, 4))
