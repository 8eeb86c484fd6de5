"""prefill (last layer: keys and values only) leaves the cache as a full forward does, on a
HookedTransformer (TransformerLens 3) and a TransformerBridge (both majors)."""

import contextlib

import pytest
import torch

import rhlens
from rhlens.adapter import causal_sdpa, forward, hook_name, hooks, new_kv_cache
from rhlens.adapter.cache import BridgeKVCache
from rhlens.adapter.core import NATIVE_KIND
from rhlens.adapter.fused import fused_attention
from rhlens.adapter.prefill import prefill

MODEL_KINDS = ["hooked", "bridge"] if NATIVE_KIND == "hooked" else ["bridge"]  # TransformerLens 4 has no HookedTransformer

CHUNKS = [(0, 7), (7, 16), (16, 24)]


def _batch(d_vocab):
    tokens = torch.randint(4, d_vocab, (3, 28), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(tokens)
    mask[1, :5] = 0
    mask[2, :9] = 0  # left padding past the first chunk
    return tokens, mask


def _run(model, tokens, mask, fill):
    """Prefill CHUNKS with ``fill``, then the rest with forward: (cache, logits of the rest)."""
    cache = new_kv_cache(model, tokens.shape[0])
    for s, e in CHUNKS:
        fill(model, tokens[:, s:e], attention_mask=mask[:, s:e], past_kv_cache=cache)
    return cache, forward(model, tokens[:, 24:], attention_mask=mask[:, 24:], past_kv_cache=cache)


def _contents(cache):
    """(the mask over the cached positions, [(keys, values) of each layer]) of either kind of cache."""
    if isinstance(cache, BridgeKVCache):
        return cache.attention_mask, [(layer.keys, layer.values) for layer in cache.hf_cache.layers]
    return cache.previous_attention_mask, [(e.past_keys, e.past_values) for e in cache.entries]


MODELS = {
    "llama": lambda dtype: rhlens.tiny_llama(n_layers=3, n_ctx=64, seed=0, dtype=dtype),
    "llama_gqa": lambda dtype: rhlens.tiny_llama(n_layers=2, n_key_value_heads=2, n_ctx=64, seed=0, dtype=dtype),
    "gpt2": lambda dtype: rhlens.tiny_gpt2(n_layers=2, n_ctx=64, seed=0, dtype=dtype),
}


def _model(name, dtype, model_kind):
    model = MODELS[name](dtype)
    return rhlens.as_bridge(model) if model_kind == "bridge" else model


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("fused", [False, True])
def test_cache_and_later_logits_equal_a_full_forward(model_kind, name, dtype, fused, monkeypatch):
    monkeypatch.setattr(causal_sdpa, "CPU_QUERY_BLOCK", 4)
    model = _model(name, dtype, model_kind)
    tokens, mask = _batch(model.cfg.d_vocab)
    fusable = fused and rhlens.adapter.fused.fused_unsupported_reason(model) is None
    with torch.no_grad(), (fused_attention(model) if fusable else contextlib.nullcontext()):
        full, after_full = _run(model, tokens, mask, forward)
        part, after_part = _run(model, tokens, mask, prefill)
    (mask_full, layers_full), (mask_part, layers_part) = _contents(full), _contents(part)
    assert torch.equal(mask_full, mask_part) and len(layers_full) == len(layers_part) == model.cfg.n_layers
    for (k_full, v_full), (k_part, v_part) in zip(layers_full, layers_part):
        assert torch.equal(k_full, k_part) and torch.equal(v_full, v_part)
    assert torch.equal(after_full, after_part)


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_skipped_hooks_do_not_fire_and_kept_ones_do(model_kind):
    model = _model("llama_gqa", torch.float32, model_kind)  # 2 layers: layer 1 is the last
    tokens, mask = _batch(model.cfg.d_vocab)
    fired = []
    names = ["k", "v", "resid_pre", "attn_out", "mlp_out", "pattern"]
    record = [(hook_name(n, 1), lambda t, hook, n=n: fired.append(n)) for n in names]
    with hooks(model, record):
        prefill(model, tokens[:, :7], attention_mask=mask[:, :7], past_kv_cache=new_kv_cache(model, 3))
    assert sorted(fired) == ["k", "resid_pre", "v"]


@pytest.mark.parametrize("model_kind", MODEL_KINDS)
def test_without_mask_or_cache(model_kind):
    model = _model("llama_gqa", torch.float32, model_kind)
    tokens, _ = _batch(model.cfg.d_vocab)
    full, part = new_kv_cache(model, 3), new_kv_cache(model, 3)
    forward(model, tokens[:, :7], past_kv_cache=full)
    prefill(model, tokens[:, :7], attention_mask=None, past_kv_cache=part)  # falls back to forward
    assert torch.equal(_contents(full)[1][1][0], _contents(part)[1][1][0])
    with pytest.raises(ValueError, match="needs a past_kv_cache"):
        prefill(model, tokens, attention_mask=None, past_kv_cache=None)
