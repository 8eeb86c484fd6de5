"""Prefill on a ``TransformerBridge``: the last layer computes its keys and values only.

:func:`rhlens.adapter.prefill.prefill` fills a KV cache without the logits of the prompt chunk. On a
bridge whose attention the fused path implements (:func:`rhlens.adapter.bridge_fused.bridge_unsupported_reason`),
:func:`bridge_prefill` runs the bridge's own cached forward with the last attention layer replaced,
for that one call, by one that computes ``hook_in`` -> ``k``/``v`` projections -> rotary keys
(``hook_k``, ``hook_v``, ``hook_rot_k`` fire), appends them to the Hugging Face cache exactly as the
full layer does, and stops the forward there (:class:`CacheFilled`, caught here): the last layer's
queries, attention and MLP, the final norm and the unembedding are skipped. Hugging Face caches
keys after rotation, so the cache holds what a full forward leaves (tested bit for bit). A bridge
whose last layer gets no rotary tables (GPT-2-shaped) runs that layer's attention in full, then stops.

>>> import torch
>>> from rhlens.adapter import forward, model_kind, new_kv_cache
>>> from rhlens.models import as_bridge, tiny_llama
>>> model = tiny_llama(n_layers=2)
>>> model = model if model_kind(model) == "bridge" else as_bridge(model)
>>> tokens, ones = torch.tensor([[1, 5, 6, 7, 8, 9]]), torch.ones(1, 6, dtype=torch.long)
>>> full, part = new_kv_cache(model, 1), new_kv_cache(model, 1)
>>> _ = forward(model, tokens[:, :4], attention_mask=ones[:, :4], past_kv_cache=full)
>>> bridge_prefill(model, tokens[:, :4], attention_mask=ones[:, :4], past_kv_cache=part)
>>> a = forward(model, tokens[:, 4:], attention_mask=ones[:, 4:], past_kv_cache=full)
>>> b = forward(model, tokens[:, 4:], attention_mask=ones[:, 4:], past_kv_cache=part)
>>> bool(torch.equal(a, b))
True
"""

import types
from typing import Any

from jaxtyping import Int
from torch import Tensor

from rhlens.adapter.cache import forward


class CacheFilled(Exception):
    """Raised by the last layer's keys-only forward once its keys and values are cached."""


def _keys_only_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    """The last attention layer during a bridge prefill: cache the new keys and values, then stop."""
    if args and "hidden_states" not in kwargs:
        kwargs["hidden_states"], args = args[0], args[1:]
    if args or kwargs.get("position_embeddings") is None:
        type(self).forward(self, *args, **kwargs)  # the full layer (it caches the same keys)
        raise CacheFilled
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    head_dim = int(self.original_component.head_dim)
    x = self.hook_in(kwargs.pop("hidden_states"))  # [batch, pos, d_model]
    cos, sin = self._apply_position_embedding_hooks(kwargs.pop("position_embeddings"))
    kwargs.pop("attention_mask", None)
    shape = (*x.shape[:-1], -1, head_dim)
    k, v = (proj(x).view(shape).transpose(1, 2) for proj in (self.k, self.v))  # [batch, kv_head, pos, d_head]
    _, k = apply_rotary_pos_emb(k, k, cos, sin)  # elementwise: the keys rotate as in the full layer
    if hasattr(self, "hook_rot_k"):
        k = self.hook_rot_k(k)
    self._update_kv_cache(k, v, **kwargs)
    raise CacheFilled


def bridge_prefill(
    model: Any, tokens: Int[Tensor, "batch pos"], *, attention_mask: Int[Tensor, "batch pos"], past_kv_cache: Any,
) -> None:
    """Append ``tokens`` (mask ``[batch, pos]``, 1 at real tokens) to the bridge cache
    ``past_kv_cache`` (from :func:`rhlens.adapter.new_kv_cache`) without their logits."""
    attn = model.blocks[-1].attn
    previous = attn.__dict__.get("forward")  # e.g. the fused forward; restored below
    attn.__dict__["forward"] = types.MethodType(_keys_only_forward, attn)
    try:
        forward(model, tokens, attention_mask=attention_mask, past_kv_cache=past_kv_cache)
    except CacheFilled:
        return
    finally:
        if previous is None:
            attn.__dict__.pop("forward", None)
        else:
            attn.__dict__["forward"] = previous
    raise RuntimeError("bridge_prefill: the bridge's forward did not reach its last attention layer")
