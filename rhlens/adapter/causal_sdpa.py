"""Causal scaled-dot-product attention for the fused path, without masks it does not need.

The query rows are the last ``q_len`` of the ``k_len`` key positions (a chunk after ``k_len -
q_len`` cached ones), so causality is aligned to the lower right. :func:`causal_sdpa` picks the
cheapest exact call of ``torch.nn.functional.scaled_dot_product_attention``:

- no extra mask (no padding, no blocked edge) and ``q_len == k_len``: the causal kernel
  (``is_causal=True``), no mask built;
- no extra mask and one query row: no mask at all (every key is at or before it);
- otherwise a bool mask, ``[1, 1, q, k]`` when only causality matters (it broadcasts over the batch)
  or the caller's ``[batch or 1, head or 1, q, k]`` one;
- with ``block`` (inference on the CPU, see :func:`query_block`) the query rows go in blocks of
  ``block``, each against the keys up to its last row only: the keys after it are masked for every
  row of the block, so dropping them changes nothing but the work (about a third less at a
  512-row chunk after 512 cached positions).

Every variant equals the single masked call to float rounding (tested to 1e-5).

>>> q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, 6, 8), torch.randn(1, 2, 6, 8)
>>> masked = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(4, 6, q.device))
>>> (causal_sdpa(q, k, v, None, scale=8 ** -0.5, block=2) - masked).abs().max() < 1e-6
tensor(True)
"""

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

# Query rows per SDPA call on the CPU at inference (measured on the wide bench config, 1 thread:
# 128 beat 64, 256 and one call at 512 x 1024 and at 1024 x 1024).
CPU_QUERY_BLOCK = 128


def query_block(q: Tensor, k: Tensor, v: Tensor) -> int | None:
    """The query block :func:`causal_sdpa` should use: :data:`CPU_QUERY_BLOCK` for CPU tensors that
    need no gradient, else ``None`` (one call; GPU kernels skip masked tiles themselves, and the
    training path keeps one autograd node)."""
    if q.device.type != "cpu" or (torch.is_grad_enabled() and (q.requires_grad or k.requires_grad or v.requires_grad)):
        return None
    return CPU_QUERY_BLOCK


def causal_mask(q_len: int, k_len: int, device: torch.device) -> Bool[Tensor, "1 1 q k"]:
    """True where query row ``i`` (position ``k_len - q_len + i``) may attend key ``j``."""
    q_pos = torch.arange(k_len - q_len, k_len, device=device)
    return (torch.arange(k_len, device=device)[None, :] <= q_pos[:, None])[None, None]


def _one_call(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, scale: float, gqa: bool) -> Tensor:
    q_len, k_len = q.shape[-2], k.shape[-2]
    if mask is None:
        if q_len == k_len:
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=gqa)
        if q_len > 1:
            mask = causal_mask(q_len, k_len, q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


def causal_sdpa(
    q: Float[Tensor, "batch head q d_head"],
    k: Float[Tensor, "batch kv_head k d_head"],
    v: Float[Tensor, "batch kv_head k d_head"],
    mask: Bool[Tensor, "#batch #head q k"] | None,
    *,
    scale: float,
    gqa: bool = False,
    block: int | None = None,
) -> Float[Tensor, "batch head q d_head"]:
    """Attention of the last ``q_len`` positions over all ``k_len`` keys.

    Args:
        mask: ``None`` for plain lower-right causal attention, else the full bool mask (True =
            attend), which must already include causality (``k > k_len - q_len + i`` masked).
        scale: the score scale (``1 / attn_scale``).
        gqa: grouped-query attention (fewer key/value heads than query heads).
        block: query rows per call (``None``: one call); see the module docstring.
    """
    q_len, k_len = q.shape[-2], k.shape[-2]
    if k_len < q_len:
        raise ValueError(f"causal_sdpa: {q_len} query rows but only {k_len} keys; queries must be the last keys' positions")
    if block is None or q_len <= block:
        return _one_call(q, k, v, mask, scale, gqa)
    past = k_len - q_len
    out = []
    for start in range(0, q_len, block):
        end = min(start + block, q_len)
        keys = past + end  # keys after the block's last row are masked for all its rows
        part = None if mask is None else mask[..., start:end, :keys]
        out.append(_one_call(q[..., start:end, :], k[..., :keys, :], v[..., :keys, :], part, scale, gqa))
    return torch.cat(out, dim=-2)
