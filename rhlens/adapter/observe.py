"""Observing attention without changing the run: ``hook_pattern`` beside the fused kernel.

An eager attention layer computes ``softmax(q k^T / scale)`` in the model's dtype and multiplies
it with the values; the fused path (:mod:`rhlens.adapter.fused`) calls SDPA instead. In float32 the
two agree to rounding, but in bfloat16 or float16 they round differently, so switching a layer to
eager because a hook only *reads* its pattern changes the model's output (on stories260K in
bfloat16, 5 of 40 greedy continuations; ``bench/observe_check.py``). Analyses that read patterns
(retrieval scores, attention detectors, ``run_with_cache``) would then describe a run the model
does not make.

On the fused path a ``hook_pattern`` hook therefore no longer switches the layer to eager.
:func:`pattern_beside` computes the pattern from the same rotated queries and keys the kernel
used (the layer's own mask: causal, padding and blocked edges), in float32, and hands it to
``hook_pattern``. When the hook returns the tensor it was given (a read-only hook), the kernel's
output stands unchanged; when it returns another pattern (an edit), the layer's ``z`` is
recomputed from it, as the eager path would.

Memory: the pattern of the forward's query rows, ``[batch, head, q, key]`` float32, as the eager
path needs; only on layers whose ``hook_pattern`` is hooked.

>>> import torch
>>> from rhlens.adapter import hook_name, hooks
>>> from rhlens.adapter.fused import fused_attention
>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_key_value_heads=2).to(torch.bfloat16, print_details=False)
>>> tokens = model.to_tokens("The sky is blue and the grass is green.")
>>> seen = []
>>> with fused_attention(model):
...     plain = model(tokens)
...     with hooks(model, [(hook_name("pattern", 0), lambda p, hook: seen.append(p))]):
...         watched = model(tokens)
>>> bool(torch.equal(plain, watched)), seen[0].dtype, tuple(seen[0].shape[1:3])
(True, torch.float32, (4, 11))
"""

from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor


def _per_query_head(x: Tensor, n_heads: int) -> Tensor:
    """``[batch, kv_head, pos, d]`` -> ``[batch, head, pos, d]`` (GQA: each key/value head serves
    ``n_heads // kv_head`` consecutive query heads)."""
    return x if x.shape[1] == n_heads else x.repeat_interleave(n_heads // x.shape[1], dim=1)


def pattern_beside(
    attn: Any,
    q: Float[Tensor, "batch head q d_head"],
    k: Float[Tensor, "batch kv_head k d_head"],
    v: Float[Tensor, "batch kv_head k d_head"],
    allowed: "Bool[Tensor, '#batch #head q k'] | None",
    z: Float[Tensor, "batch head q d_head"],
    *,
    scale: float,
) -> Float[Tensor, "batch head q d_head"]:
    """Call ``attn.hook_pattern`` with the attention of the fused forward and return ``z``: the
    kernel's own unless the hook edited the pattern (then ``pattern @ v``).

    ``scale`` multiplies the scores, as in the kernel. ``allowed`` is the mask the kernel used
    (``None``: causal only, queries the last ``q`` of the ``k`` positions); masked keys get
    probability 0 (a row with none allowed: all 0, as TransformerLens writes NaN rows as zeros).
    """
    q_len, k_len = q.shape[2], k.shape[2]
    if allowed is None:
        rows = torch.arange(k_len - q_len, k_len, device=q.device)
        allowed = (torch.arange(k_len, device=q.device)[None, :] <= rows[:, None])[None, None]
    scores = q.float() @ _per_query_head(k, q.shape[1]).float().transpose(-1, -2) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    pattern = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # [batch, head, q, k]
    out = attn.hook_pattern(pattern)
    if out is pattern:
        return z
    return (out.to(v.dtype) @ _per_query_head(v, q.shape[1])).to(z.dtype)
