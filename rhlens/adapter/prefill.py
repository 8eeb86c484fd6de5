"""Prefill: feed prompt tokens into a key/value cache without computing what only their logits need.

A prefill chunk's logits are thrown away; what later positions read from it is each layer's cached
keys and values. The last layer's keys and values need only its input norm and K/V projections,
so :func:`prefill` runs layers ``0 .. n-2`` as usual and, in the last layer, only ``ln1`` and the
projections: its attention, output projection and MLP, the final norm and the unembedding are
skipped (about ``1/n_layers`` of the prefill). A TransformerBridge skips the same
(:mod:`rhlens.adapter.bridge_prefill`). The cache ends up exactly as after
:func:`rhlens.adapter.forward` (same keys and values, same attention mask), so every later forward
gives the same logits.

Hooks on what is skipped (the last layer's attention pattern, ``hook_z``, ``hook_attn_out``, MLP,
``hook_resid_post``, the unembedding) do not fire for prefilled positions; use
:func:`rhlens.adapter.forward` where a hook must see them.

>>> from rhlens.adapter import forward, new_kv_cache
>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_layers=2)
>>> tokens = model.to_tokens("The sky is blue today.", prepend_bos=False)
>>> ones = torch.ones_like(tokens)
>>> full, part = new_kv_cache(model, 1), new_kv_cache(model, 1)
>>> _ = forward(model, tokens[:, :4], attention_mask=ones[:, :4], past_kv_cache=full)
>>> prefill(model, tokens[:, :4], attention_mask=ones[:, :4], past_kv_cache=part)
>>> a = forward(model, tokens[:, 4:], attention_mask=ones[:, 4:], past_kv_cache=full)
>>> b = forward(model, tokens[:, 4:], attention_mask=ones[:, 4:], past_kv_cache=part)
>>> (a - b).abs().max() < 1e-6
tensor(True)
"""

from typing import Any

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens.adapter.bridge_fused import bridge_unsupported_reason
from rhlens.adapter.bridge_prefill import bridge_prefill
from rhlens.adapter.cache import append_rotated_keys, drop_rotated_keys, forward
from rhlens.adapter.core import model_kind
from rhlens.adapter.fused import is_fused
from rhlens.adapter.fused_edges import has_hooks


def _keys_only_last_layer(model: Any) -> bool:
    """Whether the last layer's keys and values are ``W_K``/``W_V`` of ``ln1(resid_pre)`` alone."""
    cfg = model.cfg
    return not (
        cfg.use_attn_in or cfg.use_split_qkv_input or getattr(cfg, "load_in_4bit", False)
        or cfg.positional_embedding_type == "shortformer"
        or cfg.original_architecture in ("Olmo2ForCausalLM", "Olmo3ForCausalLM")  # post-norm: no ln1 before attention
    )


def prefill(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch pos"] | None,
    past_kv_cache: Any,
) -> None:
    """Append ``tokens`` ``[batch, pos]`` (mask ``[batch, pos]``, 1 at real tokens) to
    ``past_kv_cache`` without their logits; see the module docstring.

    On a TransformerBridge the fused path supports: :func:`rhlens.adapter.bridge_prefill.bridge_prefill`.
    Another bridge, a model whose last layer computes keys from more than its normed input, or a
    call without a mask runs :func:`rhlens.adapter.forward` (and drops the logits).
    """
    if past_kv_cache is None:
        raise ValueError("prefill needs a past_kv_cache (from rhlens.adapter.new_kv_cache) to fill")
    kind = model_kind(model)
    if attention_mask is not None and kind == "bridge" and bridge_unsupported_reason(model) is None:
        bridge_prefill(model, tokens, attention_mask=attention_mask, past_kv_cache=past_kv_cache)
        return
    if attention_mask is None or kind != "hooked" or not _keys_only_last_layer(model):
        forward(model, tokens, attention_mask=attention_mask, past_kv_cache=past_kv_cache)
        return
    last = model.cfg.n_layers - 1
    resid = model(tokens, attention_mask=attention_mask, past_kv_cache=past_kv_cache, prepend_bos=False,
                  stop_at_layer=last)  # [batch, pos, d_model]; the cache now holds the new mask
    block = model.blocks[last]
    attn, entry = block.attn, past_kv_cache[last]
    x = block.ln1(block.hook_resid_pre(resid.to(attn.W_K.device)))  # [batch, pos, d_model]
    _, k, v = attn.calculate_qkv_matrices(x, x, x)  # [batch, pos, kv_head, d_head]
    full_mask = past_kv_cache.previous_attention_mask
    if past_kv_cache.frozen:
        full_mask = torch.cat([full_mask, attention_mask.to(full_mask.device)], dim=1)
    if model.cfg.positional_embedding_type == "rotary" and is_fused(model) and not has_hooks(attn.hook_rot_k):
        append_rotated_keys(attn, entry, k, v, full_mask)
    else:
        drop_rotated_keys(entry)
        entry.append(k, v)
