"""causal_sdpa's fast calls (causal kernel, no mask, [1, 1, q, k] mask, query blocks) equal one
masked scaled_dot_product_attention call."""

import pytest
import torch
import torch.nn.functional as F

from rhlens.adapter import causal_sdpa as module
from rhlens.adapter.causal_sdpa import causal_mask, causal_sdpa, query_block

SCALE = 0.3


def _qkv(q_len, k_len, *, heads=4, kv_heads=4, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, heads, q_len, 8, generator=gen)
    k, v = (torch.randn(2, kv_heads, k_len, 8, generator=gen) for _ in range(2))
    return q.to(dtype), k.to(dtype), v.to(dtype)


def _left_padding_mask(q_len, k_len):
    """Causal & padding, [2, 1, q, k]: row 1 has its first 5 positions padded."""
    keep = torch.ones(2, k_len, dtype=torch.bool)
    keep[1, :5] = False
    return causal_mask(q_len, k_len, torch.device("cpu")) & keep[:, None, None, :]


def _reference(q, k, v, mask, gqa=False):
    """The slow path: one SDPA call with the full [batch, 1, q, k] bool mask, in float32."""
    if mask is None:
        mask = causal_mask(q.shape[-2], k.shape[-2], q.device).expand(q.shape[0], 1, -1, -1)
    return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=SCALE, enable_gqa=gqa)


SHAPES = [(12, 12), (12, 30), (1, 30), (13, 13), (7, 40)]  # first chunk, later chunk, decoding, ragged blocks


@pytest.mark.parametrize("q_len,k_len", SHAPES)
@pytest.mark.parametrize("block", [None, 4, 5, 64])
@pytest.mark.parametrize("padded", [False, True])
def test_equals_one_masked_call_float32(q_len, k_len, block, padded):
    q, k, v = _qkv(q_len, k_len)
    mask = _left_padding_mask(q_len, k_len) if padded else None
    ref = _reference(q, k, v, mask)
    out = causal_sdpa(q, k, v, mask, scale=SCALE, block=block)
    rows = (mask.any(-1) if padded else torch.ones(2, 1, q_len, dtype=torch.bool)).expand(2, 4, q_len)
    assert (out - ref)[rows].abs().max() < 1e-5  # rows with no key at all (padding queries) are undefined


@pytest.mark.parametrize("q_len,k_len", SHAPES)
@pytest.mark.parametrize("block", [None, 4])
def test_bfloat16_within_bfloat16_rounding_of_float32(q_len, k_len, block):
    q, k, v = _qkv(q_len, k_len, dtype=torch.bfloat16)
    ref = _reference(q, k, v, None)
    single = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(q_len, k_len, q.device), scale=SCALE)
    out = causal_sdpa(q, k, v, None, scale=SCALE, block=block)
    assert out.dtype == torch.bfloat16
    assert (single.float() - ref).abs().max() < 2e-2  # what one masked bfloat16 call already differs by
    assert (out.float() - ref).abs().max() < 2e-2


@pytest.mark.parametrize("block", [None, 4])
def test_grouped_query_attention_and_per_head_masks(block):
    q, k, v = _qkv(12, 30, heads=4, kv_heads=2)
    mask = _left_padding_mask(12, 30).expand(2, 4, 12, 30).clone()
    mask[:, 2, :, 20] = False  # a blocked edge on head 2
    ref = _reference(q, k, v, mask, gqa=True)
    out = causal_sdpa(q, k, v, mask, scale=SCALE, gqa=True, block=block)
    rows = mask.any(-1)
    assert (out - ref)[rows].abs().max() < 1e-5


def test_gradients_flow_through_query_blocks():
    q, k, v = (t.requires_grad_() for t in _qkv(12, 30))
    causal_sdpa(q, k, v, None, scale=SCALE, block=4).sum().backward()
    grads = [t.grad.clone() for t in (q, k, v)]
    for t in (q, k, v):
        t.grad = None
    _reference(q, k, v, None).sum().backward()
    for got, t in zip(grads, (q, k, v)):
        assert (got - t.grad).abs().max() < 1e-5


def test_query_block_only_for_cpu_inference():
    q, k, v = _qkv(4, 4)
    assert query_block(q, k, v) == module.CPU_QUERY_BLOCK
    assert query_block(q.requires_grad_(), k, v) is None
    with torch.no_grad():
        assert query_block(q, k, v) == module.CPU_QUERY_BLOCK


def test_more_queries_than_keys_is_an_error():
    q, k, v = _qkv(5, 4)
    with pytest.raises(ValueError, match="5 query rows but only 4 keys"):
        causal_sdpa(q, k, v, None, scale=SCALE)
