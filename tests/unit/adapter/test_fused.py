"""The fused (SDPA) attention path equals TransformerLens's eager attention."""

import pytest
import torch

import rhlens
from rhlens.adapter import hook_name, hooks
from rhlens.adapter.fused import FusedAttentionUnsupported, fused_attention, fused_unsupported_reason, is_fused

ATTENTION_KINDS = {"full": None, "grouped": 2, "multi_query": 1}



def _model(n_kv=None, **overrides):
    return rhlens.tiny_llama(n_layers=2, n_key_value_heads=n_kv, n_ctx=64, seed=0, **overrides)


def _tokens_and_masks(d_vocab: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(4, d_vocab, (3, 12), generator=gen)
    left = torch.ones_like(tokens)
    left[1, :4] = 0
    left[2, :9] = 0
    return tokens, left


@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
@pytest.mark.parametrize("padded", [False, True])
def test_fused_logits_match_eager(kind, padded):
    model = _model(ATTENTION_KINDS[kind])
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    mask = left if padded else None
    eager = model(tokens, attention_mask=mask, prepend_bos=False, padding_side="right")
    with fused_attention(model):
        assert is_fused(model)
        fused = model(tokens, attention_mask=mask, prepend_bos=False, padding_side="right")
    assert not is_fused(model)
    assert (fused - eager).abs().max() < 1e-5


def test_fused_gradients_match_eager():
    model = _model(2)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    model(tokens, attention_mask=left).sum().backward()
    eager = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    with fused_attention(model):
        model(tokens, attention_mask=left).sum().backward()
    for name, p in model.named_parameters():
        assert torch.allclose(p.grad, eager[name], atol=1e-4, rtol=1e-4), name


def test_fused_gpt2_shaped_model():
    model = rhlens.tiny_gpt2(n_layers=2, n_ctx=64)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)
    eager = model(tokens, attention_mask=left)
    with fused_attention(model):
        fused = model(tokens, attention_mask=left)
    assert (fused - eager).abs().max() < 1e-5


def test_fused_with_kv_cache_matches_eager_decoding():
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    model = _model(2)
    tokens, left = _tokens_and_masks(model.cfg.d_vocab)

    def decode():
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, tokens.shape[0])
        first = model(tokens[:, :8], attention_mask=left[:, :8], past_kv_cache=cache)
        rest = model(tokens[:, 8:], attention_mask=left[:, 8:], past_kv_cache=cache)
        return torch.cat([first, rest], dim=1)

    eager = decode()
    with fused_attention(model):
        fused = decode()
    assert (fused - eager).abs().max() < 1e-5


def test_pattern_hooks_see_the_eager_path_inside_the_context():
    model = _model(2)
    tokens, _ = _tokens_and_masks(model.cfg.d_vocab)
    seen = []
    with fused_attention(model):
        with hooks(model, [(hook_name("pattern", 1), lambda t, hook: seen.append(t.shape))]):
            model(tokens)
        plain = model(tokens)
    assert seen == [torch.Size([3, 4, 12, 12])]
    assert torch.allclose(plain, model(tokens), atol=1e-5)


def test_restored_after_an_exception():
    model = _model()
    with pytest.raises(RuntimeError, match="boom"):
        with fused_attention(model):
            raise RuntimeError("boom")
    assert not is_fused(model)
    assert all("forward" not in block.attn.__dict__ for block in model.blocks)


def test_nested_contexts_restore_in_order():
    model = _model()
    with fused_attention(model):
        with fused_attention(model):
            assert is_fused(model)
        assert is_fused(model)
    assert not is_fused(model)


def test_unsupported_configuration_is_named():
    model = _model(attn_scores_soft_cap=30.0)
    assert "soft-capped" in fused_unsupported_reason(model)
    with pytest.raises(FusedAttentionUnsupported, match="soft-capped"):
        with fused_attention(model):
            pass
    with fused_attention(model, strict=False):
        assert not is_fused(model)


@pytest.mark.parametrize("kind", list(ATTENTION_KINDS))
def test_hook_z_fires_on_the_fused_path_and_edits_match_eager(kind):
    """hook_z sees the eager path's [batch, pos, head, d_head] values, and an edit there gives the
    eager result, without leaving the fused path."""
    model = _model(ATTENTION_KINDS[kind])
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
            assert not rhlens.adapter.fused._needs_eager(model.blocks[1].attn)
            fused = model(tokens, attention_mask=left)
    real = left.bool()
    torch.testing.assert_close(seen[1][real], seen[0][real], rtol=1e-5, atol=1e-5)  # padding rows may differ
    assert (fused - eager)[real].abs().max() < 1e-5


def test_blocked_edges_are_the_same_on_both_paths():
    from rhlens.adapter import blocked_edges

    model = _model(2)
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
