"""patch_sweep (residual reuse from the patched layer on, heads batched, chunked prompts) against a
naive reference written here: one plain TransformerLens forward per head and example, no padding,
no cache, no rhlens code."""

import pytest
import torch

from rhlens.adapter import count_hooks
from rhlens.interventions import patch_sweep


def naive_sweep(source, target, examples, tok):
    """Mean over examples of log P(answer) with one head patched (all positions) minus unpatched:
    ``[n_layers, n_heads]``, one full forward per head."""
    n_layers, n_heads = target.cfg.n_layers, target.cfg.n_heads
    total = torch.zeros(n_layers, n_heads, dtype=torch.float64)
    for ex in examples:
        prompt = tok(ex.prompt, add_special_tokens=False).input_ids
        full = tok(ex.prompt + " " + ex.answer, add_special_tokens=False).input_ids
        ids = torch.tensor([[tok.bos_token_id] + full])
        start = 1 + len(prompt)  # first answer token

        def answer_lp(logits):
            lp = logits[0].double().log_softmax(-1)
            return sum(lp[i - 1, ids[0, i]] for i in range(start, ids.shape[1]))

        src = {}

        def save(z, hook):
            src[hook.name] = z.clone()

        with torch.no_grad():
            source.run_with_hooks(ids, fwd_hooks=[(lambda name: name.endswith("attn.hook_z"), save)])
            base = answer_lp(target(ids))
            for layer in range(n_layers):
                name = f"blocks.{layer}.attn.hook_z"
                for head in range(n_heads):

                    def patch(z, hook, head=head):
                        z = z.clone()
                        z[:, :, head] = src[hook.name][:, :, head]
                        return z

                    total[layer, head] += answer_lp(target.run_with_hooks(ids, fwd_hooks=[(name, patch)])) - base
    return total / len(examples)


@pytest.mark.parametrize("n_kv, chunk_size, heads_per_forward", [(None, None, None), (None, 7, 3), (2, 5, 2)])
def test_fast_sweep_equals_one_forward_per_head(make_model, examples, tok, n_kv, chunk_size, heads_per_forward):
    kw = dict(n_layers=3) if n_kv is None else dict(n_layers=3, n_key_value_heads=n_kv)
    source, target = make_model(seed=3, **kw), make_model(seed=4, **kw)
    sweep = patch_sweep(source, target, examples, batch_size=3, chunk_size=chunk_size,
                        heads_per_forward=heads_per_forward, progress=False)
    reference = naive_sweep(source, target, examples, tok)
    assert reference.abs().max() > 1e-2  # the heads matter, so equality is not vacuous
    torch.testing.assert_close(sweep.effect.double(), reference, rtol=0, atol=1e-5)
    assert count_hooks(source) == count_hooks(target) == 0


def test_heads_argument_sweeps_only_those(make_model, examples):
    source, target = make_model(seed=3, n_layers=3), make_model(seed=4, n_layers=3)
    full = patch_sweep(source, target, examples, progress=False)
    part = patch_sweep(source, target, examples, heads=["L2H1", "L0H3", "L0H0"], chunk_size=6, progress=False)
    chosen = torch.zeros(3, 4, dtype=torch.bool)
    chosen[2, 1] = chosen[0, 3] = chosen[0, 0] = True
    assert part.effect[~chosen].isnan().all()
    torch.testing.assert_close(part.effect[chosen], full.effect[chosen], rtol=0, atol=1e-5)
    torch.testing.assert_close(part.baseline, full.baseline, rtol=0, atol=1e-5)
    with pytest.raises(ValueError, match="L3H0"):
        patch_sweep(source, target, examples, heads=["L3H0"], progress=False)


@pytest.mark.parametrize("chunk_size", [None, 6])
def test_bridge_sweeps_equal_hooked(make_model, examples, chunk_size):
    from rhlens.interventions import attribution_sweep
    from rhlens.models import as_bridge

    source, target = make_model(seed=3), make_model(seed=4)
    bsource, btarget = as_bridge(source), as_bridge(target)
    hooked = patch_sweep(source, target, examples, batch_size=3, chunk_size=chunk_size, progress=False)
    bridge = patch_sweep(bsource, btarget, examples, batch_size=3, chunk_size=chunk_size, progress=False)
    torch.testing.assert_close(bridge.patched, hooked.patched, rtol=0, atol=1e-5)
    est_h = attribution_sweep(source, target, examples, progress=False)
    est_b = attribution_sweep(bsource, btarget, examples, progress=False)
    torch.testing.assert_close(est_b.patched, est_h.patched, rtol=0, atol=1e-5)
    assert count_hooks(bsource) == count_hooks(btarget) == 0
