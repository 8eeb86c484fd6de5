"""The intervention results share one before/after shape (issue 15 item 3), and patch_heads takes
its unpatched result as ``baseline=``, like knockout_effect (one spelling)."""

import pytest
import torch

from rhlens.evaluation import EvalResult, RunOptions, evaluate
from rhlens.heads import HeadSet
from rhlens.interventions import patch_heads
from rhlens.interventions.results import BeforeAfter, KnockoutEffect, PatchResult, PatchSweep


def _result(values):
    return EvalResult(per_example=torch.tensor(values))


def test_knockout_patch_and_sweep_share_the_before_after_base():
    base, after = _result([1.0, 0.5]), _result([0.0, 0.5])
    knock = KnockoutEffect(base, after, HeadSet(["L0H0"]), "zero")
    patch = PatchResult(baseline=base, patched=after, heads=HeadSet(["L0H0"]))
    sweep = PatchSweep(baseline=torch.tensor([1.0, 0.5]), patched=torch.tensor([[[0.0, 0.5], [1.0, 1.5]]]))
    assert all(isinstance(r, BeforeAfter) for r in (knock, patch, sweep))
    for r in (knock, patch):
        assert r.after is after and r.delta == -0.5 and r.per_example_delta.tolist() == [-1.0, 0.0]
        assert float(r.effect) == -0.5
    assert sweep.after is sweep.patched and sweep.effect.tolist() == [[-0.5, 0.5]]
    assert list(knock.to_dataframe().columns) == ["example", "baseline", "knocked", "delta"]


def test_patch_heads_reuses_a_given_baseline(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    opts = RunOptions(metric="logprob", progress=False)
    intact = evaluate(target, examples, options=opts)
    given = patch_heads(source, target, examples, ["L0H1"], baseline=intact, options=opts)
    computed = patch_heads(source, target, examples, ["L0H1"], options=opts)
    assert given.baseline is intact
    assert torch.equal(computed.baseline.per_example, intact.per_example)
    assert torch.equal(given.patched.per_example, computed.patched.per_example)
    with pytest.raises(TypeError):
        patch_heads(source, target, examples, ["L0H1"], original=intact, options=opts)
    with pytest.raises(ValueError, match="baseline has 1 scores but there are 4 examples"):
        patch_heads(source, target, examples, ["L0H1"], baseline=_result([0.0]), options=opts)
