"""patch_sweep (batched per layer) and patching_table."""

import pytest
import torch

from rhlens.adapter import count_hooks
from rhlens.heads import Head, HeadSet
from rhlens.interventions import patch_heads, patch_sweep, patching_table


@pytest.mark.parametrize("n_kv", [None, 2])
def test_sweep_equals_patching_each_head_alone(make_model, examples, n_kv):
    kw = {} if n_kv is None else {"n_key_value_heads": n_kv}
    source, target = make_model(seed=1, **kw), make_model(seed=2, **kw)
    sweep = patch_sweep(source, target, examples, batch_size=3, progress=False)
    assert sweep.effect.shape == (2, 4) and sweep.patched.shape == (2, 4, len(examples))
    for head in [Head(0, 1), Head(1, 3)]:
        one = patch_heads(source, target, examples, [head], metric="logprob", chunk_size=None, progress=False)
        torch.testing.assert_close(sweep.baseline, one.baseline.per_example, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sweep.patched[head.layer, head.head], one.patched.per_example, rtol=1e-5, atol=1e-5)
    split = patch_sweep(source, target, examples, heads_per_forward=3, batch_size=4, progress=False)
    torch.testing.assert_close(split.patched, sweep.patched, rtol=1e-5, atol=1e-5)
    assert count_hooks(source) == count_hooks(target) == 0
    assert len(sweep.top(2)) == 2


def test_sweep_positions_and_metric_errors(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    needle = patch_sweep(source, target, examples, positions="needle", progress=False)
    one = patch_heads(source, target, examples, ["L0H2"], positions="needle", metric="logprob", progress=False)
    torch.testing.assert_close(needle.patched[0, 2], one.patched.per_example, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="logprob"):
        patch_sweep(source, target, examples, metric="exact_match")


def test_patching_table(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    src_scores = torch.tensor([[0.9, 0.8, 0.0, 0.0], [0.7, 0.0, 0.0, 0.1]])
    tgt_scores = torch.tensor([[0.9, 0.0, 0.0, 0.0], [0.8, 0.0, 0.5, 0.0]])
    table = patching_table(source, target, examples, src_scores, tgt_scores, k=3, metric="logprob", n_random=2, progress=False)
    assert table.names == ["original", "intersection", "complement", "random (2, as intersection)", "random (1, as complement)"]
    assert table["intersection"].heads == HeadSet(["L0H0", "L1H0"])
    assert table["complement"].heads == HeadSet(["L0H1"])
    top = HeadSet(["L0H0", "L0H1", "L1H0", "L1H2"])
    assert not (table.rows[3].heads & top) and len(table.rows[3].draws) == 2
    direct = patch_heads(source, target, examples, ["L0H0", "L1H0"], metric="logprob", progress=False)
    assert table["intersection"].score == pytest.approx(direct.patched.score, abs=1e-5)
    assert table["intersection"].delta == pytest.approx(direct.delta, abs=1e-5)
    assert table.deltas.shape == (5,) and table.deltas[0] == 0
    with pytest.raises(ValueError, match="pass k="):
        patching_table(source, target, examples, src_scores, tgt_scores)


def test_patching_table_reuses_a_given_baseline(make_model, examples):
    from rhlens import evaluate

    source, target = make_model(seed=1), make_model(seed=2)
    src_scores = torch.tensor([[0.9, 0.8, 0.0, 0.0], [0.7, 0.0, 0.0, 0.1]])
    tgt_scores = torch.tensor([[0.9, 0.0, 0.0, 0.0], [0.8, 0.0, 0.5, 0.0]])
    kw = dict(k=3, metric="logprob", progress=False)
    fresh = patching_table(source, target, examples, src_scores, tgt_scores, **kw)
    intact = evaluate(target, examples, metric="logprob", progress=False)
    reused = patching_table(source, target, examples, src_scores, tgt_scores, baseline=intact, **kw)
    assert reused.deltas.tolist() == pytest.approx(fresh.deltas.tolist(), abs=1e-6)
    shifted = evaluate(target, examples, metric="logprob", progress=False)
    shifted.per_example += 1.0  # a baseline the table did not compute is the one it subtracts
    moved = patching_table(source, target, examples, src_scores, tgt_scores, baseline=shifted, **kw)
    assert moved["intersection"].delta == pytest.approx(fresh["intersection"].delta - 1.0, abs=1e-5)
    with pytest.raises(ValueError, match="patching_table: baseline has"):
        patching_table(source, target, examples[:-1], src_scores, tgt_scores, baseline=intact, **kw)


def test_table_from_head_sets_and_dataframe(make_model, examples):
    pd = pytest.importorskip("pandas")
    source, target = make_model(seed=1), make_model(seed=2)
    with pytest.raises(ValueError, match="exclude="):  # head sets carry no scores: the control's exclusion must be given
        patching_table(source, target, examples, HeadSet(["L0H0", "L1H1"]), HeadSet(["L0H0"]), metric="logprob", progress=False)
    table = patching_table(source, target, examples, HeadSet(["L0H0", "L1H1"]), HeadSet(["L0H0"]), metric="logprob",
                           exclude=HeadSet(["L0H3"]), progress=False)
    assert not (table.rows[3].heads | table.rows[4].heads) & HeadSet(["L0H0", "L1H1", "L0H3"])
    df = table.to_dataframe()
    assert isinstance(df, pd.DataFrame) and df.loc[1, "heads"] == "L0H0" and df.loc[2, "heads"] == "L1H1"
