"""attribution_sweep: the first-order estimate of every head's patching effect."""

import torch

from rhlens.adapter import count_hooks
from rhlens.interventions import attribution_sweep, patch_sweep


def nudged_copy(model, make_model, eps, seed=0, **kw):
    """A copy of ``model`` with every weight moved by ``eps`` times its own scale of noise."""
    out = make_model(**kw)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for (_name, p), (_, q) in zip(model.named_parameters(), out.named_parameters()):
            q.copy_(p + eps * p.std().nan_to_num(0) * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return out


def nearby_sources(make_model):
    """``(eps, source, target)`` for eps 1e-3 and 1e-2: one float64 target (3 layers, so exact
    effects, differences of log-probs, carry no rounding noise) and a copy nudged by eps."""
    kw = dict(n_layers=3, dtype=torch.float64)
    target = make_model(seed=5, **kw)
    for eps in (1e-3, 1e-2):
        yield eps, nudged_copy(target, make_model, eps, **kw), target


def test_estimate_matches_the_exact_sweep_for_a_nearby_source(make_model, examples):
    for eps, source, target in nearby_sources(make_model):
        est = attribution_sweep(source, target, examples, batch_size=3, progress=False)
        exact = patch_sweep(source, target, examples, batch_size=3, progress=False)
        torch.testing.assert_close(est.baseline, exact.baseline, rtol=0, atol=1e-5)
        scale = exact.effect.abs().max()
        assert scale > 0
        # first order: the error shrinks like eps^2 while the effect shrinks like eps
        err = (est.effect - exact.effect).abs().max() / scale
        assert err < 10 * eps, (eps, float(err))  # measured: 2.5 * eps


def test_positions_and_model_state_restored(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    target.train()
    nowhere = attribution_sweep(source, target, examples, positions=lambda enc, n: torch.zeros(n, dtype=torch.bool),
                                progress=False)
    assert nowhere.effect.abs().max() == 0
    everywhere = attribution_sweep(source, target, examples, progress=False)
    assert everywhere.effect.abs().max() > 0 and everywhere.effect.shape == (2, 4)
    assert everywhere.patched.shape == (2, 4, len(examples))
    assert target.training and all(p.requires_grad for p in target.parameters())
    assert count_hooks(source) == count_hooks(target) == 0
    assert all(p.grad is None for p in target.parameters())
