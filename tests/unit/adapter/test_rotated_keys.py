"""The fused path's fast paths through a model equal the slow ones: only new keys rotated before
caching (vs TransformerLens re-rotating every cached key), the causal kernel and query blocks (vs one
masked call), with left padding, chunked prefill, float32 and bfloat16."""

import pytest
import torch
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

import rhlens
from rhlens.adapter import causal_sdpa, hook_name, hooks
from rhlens.adapter.cache import _ROTATED
from rhlens.adapter.fused import fused_attention

CHUNKS = [(0, 7), (7, 16), (16, 17), (17, 24)]  # ragged prefill chunks, then one decoding-like step


def _model(dtype=torch.float32, n_kv=2):
    return rhlens.tiny_llama(n_layers=2, n_key_value_heads=n_kv, n_ctx=64, seed=0, dtype=dtype)


def _batch(d_vocab, padded=True):
    tokens = torch.randint(4, d_vocab, (3, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(tokens)
    if padded:
        mask[1, :5] = 0
        mask[2, :9] = 0  # padding runs past the first chunk
    return tokens, mask


def _chunked(model, tokens, mask, chunks=CHUNKS, between=None):
    """Logits of the chunks fed through one KV cache; ``between(i, cache)`` runs after chunk i."""
    cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, tokens.shape[0])
    out = []
    for i, (s, e) in enumerate(chunks):
        out.append(model(tokens[:, s:e], attention_mask=mask[:, s:e], past_kv_cache=cache, prepend_bos=False))
        if between is not None:
            between(i, cache)
    return torch.cat(out, dim=1), cache


@pytest.fixture(params=[None, 4], ids=["one_call", "query_blocks_of_4"])
def block(request, monkeypatch):
    if request.param is not None:
        monkeypatch.setattr(causal_sdpa, "CPU_QUERY_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("n_kv", [None, 2])
def test_chunked_prefill_fast_paths_equal_eager(block, padded, n_kv):
    model = _model(n_kv=n_kv)
    tokens, mask = _batch(model.cfg.d_vocab, padded)
    with torch.no_grad():
        eager, _ = _chunked(model, tokens, mask)
        one_pass = model(tokens, attention_mask=mask, prepend_bos=False)
        with fused_attention(model):
            fused, _ = _chunked(model, tokens, mask)
    real = mask.bool()
    assert (eager - one_pass)[real].abs().max() < 1e-5
    assert (fused - eager)[real].abs().max() < 1e-5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_kept_rotated_keys_equal_full_rerotation_exactly(dtype):
    model = _model(dtype)
    tokens, mask = _batch(model.cfg.d_vocab)
    checked = []

    def check(i, cache):
        for block in model.blocks:
            entry = cache[block.attn.layer_id]
            full = block.attn.apply_rotary(entry.past_keys, 0, cache.previous_attention_mask)
            kept = entry.__dict__[_ROTATED].keys
            assert kept.dtype == dtype and torch.equal(kept, full)
        checked.append(i)

    with torch.no_grad(), fused_attention(model):
        _chunked(model, tokens, mask, between=check)
    assert checked == [0, 1, 2, 3]


def test_bfloat16_fused_chunks_match_eager_to_bfloat16_rounding(block):
    model = _model(torch.bfloat16)
    tokens, mask = _batch(model.cfg.d_vocab)
    with torch.no_grad():
        eager, _ = _chunked(model, tokens, mask)
        with fused_attention(model):
            fused, _ = _chunked(model, tokens, mask)
            fused_again, _ = _chunked(model, tokens, mask)
    real = mask.bool()
    assert torch.equal(fused, fused_again)
    scale = eager[real].float().abs().max()
    assert ((fused - eager)[real].float().abs().max() / scale) < 3e-2


def test_hook_on_rotated_keys_takes_the_full_rotation_path_with_the_same_keys():
    model = _model()
    tokens, mask = _batch(model.cfg.d_vocab)
    seen = []
    with torch.no_grad(), fused_attention(model):
        fast, _ = _chunked(model, tokens, mask)
        with hooks(model, [(hook_name("rot_k", 1), lambda k, hook: seen.append(k.clone()))]):
            slow, cache = _chunked(model, tokens, mask)
    assert [k.shape[1] for k in seen] == [e for _, e in CHUNKS]  # every cached key, at every chunk
    assert torch.equal(fast, slow)
    assert _ROTATED not in cache[1].__dict__ and _ROTATED in cache[0].__dict__


def test_eager_chunk_in_between_is_picked_up():
    """A chunk that runs eagerly (a hook on the scores; a pattern hook no longer forces it) appends
    raw keys only; the next fused chunk sees that and rotates every key again."""
    model = _model()
    tokens, mask = _batch(model.cfg.d_vocab)
    pattern = [(hook_name("attn_scores", layer), lambda p, hook: None) for layer in range(2)]

    def fused_run():
        cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, 3)
        out = []
        for i, (s, e) in enumerate(CHUNKS):
            with hooks(model, pattern if i == 1 else []):
                out.append(model(tokens[:, s:e], attention_mask=mask[:, s:e], past_kv_cache=cache, prepend_bos=False))
            if i == 1:
                assert _ROTATED not in cache[0].__dict__
        return torch.cat(out, dim=1)

    with torch.no_grad():
        eager, _ = _chunked(model, tokens, mask)
        with fused_attention(model):
            fused = fused_run()
    assert (fused - eager)[mask.bool()].abs().max() < 1e-5


def test_rebuilt_rotary_tables_and_frozen_cache():
    from rhlens.adapter.rotary import rebuild_rotary_tables

    model = _model()
    tokens, mask = _batch(model.cfg.d_vocab)

    def rebuild(i, cache):
        if i == 1:
            model.cfg.rotary_base = 5_000  # new tables: kept keys are stale and must not be used
            rebuild_rotary_tables(model)

    with torch.no_grad():
        eager, _ = _chunked(model, tokens, mask, between=rebuild)
        model.cfg.rotary_base = 10_000
        rebuild_rotary_tables(model)
        with fused_attention(model):
            fused, cache = _chunked(model, tokens, mask, between=rebuild)
            cache.freeze()
            n = cache[0].past_keys.shape[1]
            kept = cache[0].__dict__[_ROTATED]
            model(tokens[:, :1], attention_mask=mask[:, :1], past_kv_cache=cache, prepend_bos=False)
            assert cache[0].past_keys.shape[1] == n and cache[0].__dict__[_ROTATED] is kept
    assert (fused - eager)[mask.bool()].abs().max() < 1e-5


def test_all_ones_mask_without_cache_uses_no_mask_and_matches_eager(monkeypatch):
    model = _model()
    tokens, mask = _batch(model.cfg.d_vocab, padded=False)
    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        calls.append((kwargs.get("is_causal", False), kwargs.get("attn_mask")))
        return original(*args, **kwargs)

    with torch.no_grad():
        eager = model(tokens, attention_mask=mask, prepend_bos=False)
        with fused_attention(model):
            monkeypatch.setattr(causal_sdpa.F, "scaled_dot_product_attention", spy)
            fused = model(tokens, attention_mask=mask, prepend_bos=False)
    assert calls == [(True, None), (True, None)]
    assert (fused - eager).abs().max() < 1e-5
