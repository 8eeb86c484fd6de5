"""The fused (SDPA) attention path equals TransformerLens's eager attention, on a HookedTransformer
(TransformerLens 3) and on a TransformerBridge (both majors: on 3.x the same weights through
:func:`rhlens.as_bridge`). On a bridge a padding query row (it sees no key) differs from the eager
bridge's, which averages every key there; outputs are compared at the real positions."""

import pytest
import torch

import rhlens
from rhlens.adapter import hook_name, hooks, new_kv_cache
from rhlens.adapter.core import NATIVE_KIND
from rhlens.adapter.fused import FusedAttentionUnsupported, fused_attention, fused_unsupported_reason, is_fused
from rhlens.adapter.fused_edges import needs_eager

ATTENTION_KINDS = {"full": None, "grouped": 2, "multi_query": 1}
MODEL_KINDS = ["hooked", "bridge"] if NATIVE_KIND == "hooked" else ["bridge"]  # TransformerLens 4 has no HookedTransformer


def _model(n_kv=None, model_kind=NATIVE_KIND, **overrides):
    model = rhlens.tiny_llama(n_layers=2, n_key_value_heads=n_kv, n_ctx=64, seed=0, **overrides)
    return rhlens.as_bridge(model) if model_kind == "bridge" else model


def _tokens_and_masks(d_vocab: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, d_vocab, (3, 12), generator=gen)
    left = torch.ones_like(tokens)
    left[1, :4] = 0
    left[2, :9] = 0
    return tokens, left


def _right_padded(tokens):
    right = torch.ones_like(tokens)
    right[1, 8:] = 0
    right[2, 3:] = 0
    return right


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
@pytest.mark.parametrize("padding", ["none", "left", "right"])
def test_fused_logits_match_eager(model_kind, kind, padding):
    model = _model(ATTENTION_KINDS[kind], model_kind)
    assert rhlens.adapter.model_kind(model) == model_kind and fused_unsupported_reason(model) is None
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    mask = {"none": None, "left": left, "right": _right_padded(tokens)}[padding]
    eager = model(tokens, attention_mask=mask)
    with fused_attention(model):
        assert is_fused(model)
        fused = model(tokens, attention_mask=mask)
    assert not is_fused(model)
    real = torch.ones_like(tokens, dtype=torch.bool) if mask is None else mask.bool()
    assert (fused - eager)[real].abs().max() < 1e-5


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_fused_gradients_match_eager(model_kind):
    model = _model(2, model_kind)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    (model(tokens, attention_mask=left) * left[..., None]).sum().backward()  # real positions only
    eager = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    with fused_attention(model):
        (model(tokens, attention_mask=left) * left[..., None]).sum().backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, eager[name], atol=1e-4, rtol=1e-4), name


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_fused_gpt2_shaped_model(model_kind):
    model = rhlens.tiny_gpt2(n_layers=2, n_ctx=64)
    model = rhlens.as_bridge(model) if model_kind == "bridge" else model
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    eager = model(tokens, attention_mask=left)
    with fused_attention(model):
        assert is_fused(model)
        fused = model(tokens, attention_mask=left)
    assert (fused - eager)[left.bool()].abs().max() < 1e-5


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
@pytest.mark.parametrize("shape", ["llama_gqa", "gpt2"])
def test_fused_with_kv_cache_matches_eager_decoding(model_kind, shape):
    model = _model(2, model_kind) if shape == "llama_gqa" else rhlens.tiny_gpt2(n_layers=2, n_ctx=64)
    model = rhlens.as_bridge(model) if model_kind == "bridge" else model
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)

    def decode():  # a chunk of 8, then one token at a time
        cache = new_kv_cache(model, tokens.shape[0])
        out = [rhlens.adapter.forward(model, tokens[:, :8], attention_mask=left[:, :8], past_kv_cache=cache)]
        for col in range(8, tokens.shape[1]):
            out.append(rhlens.adapter.forward(model, tokens[:, col:col + 1], attention_mask=left[:, col:col + 1],
                                              past_kv_cache=cache))
        return torch.cat(out, dim=1)

    eager = decode()
    with fused_attention(model):
        fused = decode()
    assert (fused - eager)[left.bool()].abs().max() < 1e-5
    assert (eager - model(tokens, attention_mask=left))[left.bool()].abs().max() < 1e-5  # the cache is used


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_pattern_hooks_see_the_eager_path_inside_the_context(model_kind):
    model = _model(2, model_kind)
    tokens, _ = _tokens_and_masks(model.cfg.d_vocab)
    seen = []
    with fused_attention(model):
        with hooks(model, [(hook_name("pattern", 1), lambda t, hook: seen.append(t.shape))]):
            model(tokens)
        plain = model(tokens)
    assert seen == [torch.Size([3, 4, 12, 12])]
    assert torch.allclose(plain, model(tokens), atol=1e-5)


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_observed_pattern_equals_the_eager_pattern(model_kind):
    """The pattern handed to hook_pattern beside the kernel is the eager path's (GQA, left padding), at
    the real query rows (a padding row: 0 beside the kernel; the eager bridge averages every key)."""
    model = _model(2, model_kind)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    seen = []
    with hooks(model, [(hook_name("pattern", layer), lambda p, hook: seen.append(p.clone())) for layer in (0, 1)]):
        model(tokens, attention_mask=left)
        with fused_attention(model):
            model(tokens, attention_mask=left)
    real = left.bool()
    for eager, fused in zip(seen[:2], seen[2:]):
        assert fused.shape == eager.shape == (3, 4, 12, 12)
        assert (fused - eager).permute(0, 2, 1, 3)[real].abs().max() < 1e-5


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_restored_after_an_exception(model_kind):
    model = _model(None, model_kind)
    with pytest.raises(RuntimeError, match="boom"):
        with fused_attention(model):
            raise RuntimeError("boom")
    assert not is_fused(model)
    assert all("forward" not in block.attn.__dict__ for block in model.blocks)


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_nested_contexts_restore_in_order(model_kind):
    model = _model(None, model_kind)
    with fused_attention(model):
        with fused_attention(model):
            assert is_fused(model)
        assert is_fused(model)
    assert not is_fused(model)


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_score_hooks_run_the_eager_forward_inside_the_context(model_kind, monkeypatch):
    """A hook on hook_attn_scores needs what SDPA skips: that layer runs eagerly (the hook sees
    [batch, head, q, k] scores), the other layer stays fused, and the logits are the eager ones."""
    import torch.nn.functional as F

    model = _model(2, model_kind)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    eager = model(tokens, attention_mask=left)
    calls, seen = [], []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with fused_attention(model), hooks(model, [(hook_name("attn_scores", 0), lambda t, hook: seen.append(t.shape))]):
        fused = model(tokens, attention_mask=left)
    assert seen == [torch.Size([3, 4, 12, 12])] and len(calls) == 1
    assert (fused - eager)[left.bool()].abs().max() < 1e-5


UNSUPPORTED = {  # a model the fused path does not implement, and the words its refusal names
    "soft_cap": (lambda: _model(attn_scores_soft_cap=30.0), "soft-capped"),
    "attn_result_bridge": (lambda: _per_head_results(rhlens.as_bridge(_model())), "use_attn_result"),
}


def _per_head_results(bridge):
    bridge.cfg.use_attn_result = True  # TransformerLens's per-head results (hook_result)
    return bridge


@pytest.mark.parametrize("case", list(UNSUPPORTED))
def test_unsupported_configuration_is_named(case):
    """Refused by name (strict), run eagerly with strict=False; on a bridge too."""
    build, words = UNSUPPORTED[case]
    model = build()
    assert words in fused_unsupported_reason(model)
    with pytest.raises(FusedAttentionUnsupported, match=words):
        with fused_attention(model):
            pass
    with fused_attention(model, strict=False):
        assert not is_fused(model)


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_hook_z_fires_on_the_fused_path_and_edits_match_eager(model_kind, kind):
    """hook_z sees the eager path's [batch, pos, head, d_head] values, and an edit there gives the
    eager result, without leaving the fused path."""
    model = _model(ATTENTION_KINDS[kind], model_kind)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    seen = {}

    def zero_head(z, hook):
        seen.setdefault(len(seen), z.clone())
        z = z.clone()
        z[:, :, 1] = 0
        return z

    with hooks(model, [(hook_name("z", 1), zero_head)]):
        eager = model(tokens, attention_mask=left)
        with fused_attention(model):
            assert not needs_eager(model.blocks[1].attn)
            fused = model(tokens, attention_mask=left)
    real = left.bool()
    torch.testing.assert_close(seen[1][real], seen[0][real], rtol=1e-5, atol=1e-5)  # padding rows may differ
    assert (fused - eager)[real].abs().max() < 1e-5


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_blocked_edges_are_the_same_on_both_paths(model_kind):
    from rhlens.adapter import blocked_edges

    model = _model(2, model_kind)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)

    def edges(n_rows, q_len, k_len, device):
        out = torch.zeros(n_rows, 4, q_len, k_len, dtype=torch.bool, device=device)
        out[:, 2, :, 10] = True  # head 2: nothing attends to column 10
        return out

    with blocked_edges(model, {0: edges, 1: edges}):
        eager = model(tokens, attention_mask=left)
        with fused_attention(model):
            fused = model(tokens, attention_mask=left)
    assert (fused - eager)[left.bool()].abs().max() < 1e-5
    assert (eager - model(tokens, attention_mask=left))[:, 10:].abs().max() > 1e-4
    assert all(not getattr(b.attn, "_rhlens_blocked_edges", []) for b in model.blocks)


def test_padding_check_is_remembered_per_mask_and_sees_in_place_edits(monkeypatch):
    """One forward passes one mask to every layer: it is checked once; a new mask, or the same
    tensor edited in place, is checked again."""
    from rhlens.adapter import fused

    calls = []
    real_all = torch.Tensor.all
    monkeypatch.setattr(torch.Tensor, "all", lambda self, *a, **k: calls.append(1) or real_all(self, *a, **k))
    mask = torch.ones(2, 5, dtype=torch.long)
    assert [fused._has_padding(mask) for _ in range(4)] == [False] * 4 and len(calls) == 1
    mask[1, 0] = 0
    assert fused._has_padding(mask) and len(calls) == 2
    assert not fused._has_padding(torch.ones(2, 5, dtype=torch.long)) and len(calls) == 3
    assert not fused._has_padding(None)
