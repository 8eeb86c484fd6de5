"""attribution_sweep(gradient_dropout=True): AtP*'s GradDrop against exact patching with a block frozen.

The reference does not use rhlens's attribution code: for each head and each block ``d`` it runs
the target one example at a time with the head's ``hook_z`` taken from a nearby source and block
``d``'s attention and MLP outputs frozen at the unpatched target's values (so no path through
block ``d`` carries the patch). For a source close to the target, that exact effect equals the
first-order estimate with block ``d``'s gradient dropped, up to second-order terms.
"""

import pytest
import torch

from rhlens.adapter import count_hooks, hook_name, hooks
from rhlens.encoding import encode_for_model
from rhlens.interventions import attribution_sweep
from tests.unit.interventions.test_attribution import nearby_sources


def _capture(model, tokens, kinds, n_layers):
    """``{(kind, layer): activation}`` of one unpatched run."""
    store = {}

    def keep(key):
        def hook(x, hook):
            store[key] = x.detach().clone()

        return hook

    with torch.no_grad(), hooks(model, [(hook_name(k, l), keep((k, l))) for k in kinds for l in range(n_layers)]):
        model(tokens)
    return store


def _answer_logprob(model, tokens, span, fwd_hooks):
    with torch.no_grad(), hooks(model, fwd_hooks):
        lp = model(tokens).double().log_softmax(-1)[0]
    return float(sum(lp[i - 1, tokens[0, i]] for i in range(*span)))


def frozen_patch_effects(source, target, examples, n_layers, n_heads):
    """``[drop_layer, layer, head]``: mean over examples of the exact change in answer log-prob
    when head ``LlHh`` is patched from ``source`` with block ``d``'s outputs frozen."""
    out = torch.zeros(n_layers, n_layers, n_heads, dtype=torch.float64)
    for enc in encode_for_model(target, examples, what="test", with_answer=True, append_eos=False):
        tokens = torch.tensor([enc.tokens])
        src = _capture(source, tokens, ["z"], n_layers)
        clean = _capture(target, tokens, ["attn_out", "mlp_out"], n_layers)
        base = _answer_logprob(target, tokens, enc.completion_span, [])
        for d in range(n_layers):
            freeze = [(hook_name(k, d), lambda x, hook, v=clean[(k, d)]: v) for k in ("attn_out", "mlp_out")]
            for l in range(n_layers):
                for h in range(n_heads):
                    def patch(z, hook, l=l, h=h):
                        z = z.clone()
                        z[:, :, h] = src[("z", l)][:, :, h]
                        return z

                    lp = _answer_logprob(target, tokens, enc.completion_span, [(hook_name("z", l), patch)] + freeze)
                    out[d, l, h] += (lp - base) / len(examples)
    return out


def test_graddrop_matches_frozen_block_patching(make_model, examples):
    for eps, source, target in nearby_sources(make_model):
        est = attribution_sweep(source, target, examples, batch_size=3, gradient_dropout=True, progress=False)
        exact = frozen_patch_effects(source, target, examples, 3, 4)
        dropped = est.dropped.double().mean(dim=-1)
        scale = exact.abs().max()
        assert scale > 0
        err = (dropped - exact).abs().max() / scale
        assert err < 10 * eps, (eps, float(err))
        for l in range(3):  # blocking the head's own block leaves nothing to patch
            assert exact[l, l].abs().max() == 0 and est.dropped[l, l].abs().max() == 0
        reference = exact.abs().sum(dim=0) / 2  # AtP*: mean of |estimate| over the other n_layers - 1 blocks
        assert ((est.graddrop.double() - reference).abs().max() / reference.abs().max()) < 10 * eps
        # without dropout the same call gives the same plain estimate
        plain = attribution_sweep(source, target, examples, batch_size=3, progress=False)
        torch.testing.assert_close(plain.effect, est.effect, rtol=0, atol=1e-6)
        assert plain.dropped is None and plain.graddrop is None


def test_graddrop_restores_state_and_refuses_one_layer(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    target.train()
    est = attribution_sweep(source, target, examples, gradient_dropout=True, progress=False)
    assert est.dropped.shape == (2, 2, 4, len(examples)) and est.graddrop.shape == (2, 4)
    assert target.training and all(p.requires_grad for p in target.parameters())
    assert count_hooks(source) == count_hooks(target) == 0
    assert all(p.grad is None for p in target.parameters())
    with pytest.raises(ValueError, match="at least 2 layers"):
        attribution_sweep(make_model(seed=1, n_layers=1), make_model(seed=2, n_layers=1), examples,
                          gradient_dropout=True, progress=False)
