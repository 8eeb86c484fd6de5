"""Fused attention on a ``TransformerBridge``: its attention layers through SDPA.

A bridge's Llama-shaped attention (TransformerLens's ``PositionEmbeddingsAttentionBridge``, in
TransformerLens 3.9 and 4.x) reimplements Hugging Face attention eagerly so that
``hook_attn_scores`` and ``hook_pattern`` can fire. Inside :func:`rhlens.adapter.fused.fused_attention`
each such layer instead runs :func:`bridge_fused_forward`:

    q, k, v  = the bridge's own projections (``hook_q``/``hook_k``/``hook_v`` fire)
    q, k     = Hugging Face's rotary with the layer's ``position_embeddings`` (``hook_rot_q/k`` fire)
    k, v     = the layer's KV cache extended (Hugging Face's cache holds rotated keys)
    z        = SDPA(q, k, v, the Hugging Face mask & ~blocked edges, scale = the layer's ``scaling``, GQA)
    out      = o(z)                          (``hook_z`` fires: the output projection's input)

which equals the eager bridge at every real position to float rounding (logits within 1e-5 in
float32; tested with grouped-query attention and left/right padding). A padding query row, which
sees no key, gives 0 (the eager bridge averages every key there); no real position reads it. The
4-D mask Hugging Face hands every layer is read once per forward (:func:`sdpa_mask`): when it is
plain causal SDPA gets no mask (its causal kernel). A ``hook_pattern`` hook sees the pattern
computed beside the kernel (:mod:`rhlens.adapter.observe`); a hook on ``hook_attn_scores`` or
``hook_result``, training-time attention dropout, or rotary tables narrower than a head run the
bridge's own eager forward for that call. :func:`bridge_unsupported_reason` names the attention
features this path does not implement (QK norms, soft-capping, sinks, gated or split inputs ...).
A GPT-2-shaped bridge (``JointQKVAttentionBridge``: no rotary, scale ``1/sqrt(d_head)``) runs
:func:`joint_qkv_fused_forward`, the same steps without rotary.

>>> from rhlens.adapter import model_kind
>>> from rhlens.adapter.fused import fused_attention
>>> from rhlens.models import as_bridge, tiny_llama
>>> model = tiny_llama(n_key_value_heads=2)  # a bridge on TransformerLens 4, converted on 3
>>> model = model if model_kind(model) == "bridge" else as_bridge(model)
>>> tokens = torch.tensor([[1, 5, 6, 7, 8]])
>>> with fused_attention(model):
...     fused = model(tokens)
>>> bool((fused - model(tokens)).abs().max() < 1e-5)
True
"""

import weakref
from typing import Any

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens.adapter.causal_sdpa import causal_mask, causal_sdpa, query_block
from rhlens.adapter.fused_edges import has_hooks, needs_eager, with_blocked_edges
from rhlens.adapter.observe import pattern_beside

# Config flags of a bridge whose attention the fused path does not implement, and what they mean.
_CONFIG_FLAGS = {
    "use_split_qkv_input": "split Q/K/V inputs", "use_attn_in": "per-head attention inputs",
    "use_attn_result": "use_attn_result (per-head results are requested)", "gated_q_proj": "gated queries",
    "rotary_adjacent_pairs": "adjacent-pair rotary", "rotary_interleaved_cos_sin": "interleaved rotary",
    "load_in_4bit": "4-bit weights",
}
# Attributes of the Hugging Face attention module that the fused path does not implement.
_HF_ATTRIBUTES = {"key_multiplier": "scaled keys", "attn_logit_softcapping": "soft-capped attention scores",
                  "sinks": "attention sinks"}


def _classes() -> tuple[Any, Any]:
    """TransformerLens's Llama-shaped (rotary) and GPT-2-shaped (joint QKV) attention bridge classes."""
    from transformer_lens.model_bridge.generalized_components.joint_qkv_attention import JointQKVAttentionBridge
    from transformer_lens.model_bridge.generalized_components.position_embeddings_attention import (
        PositionEmbeddingsAttentionBridge,
    )

    return PositionEmbeddingsAttentionBridge, JointQKVAttentionBridge


def _layer_reason(attn: Any) -> str | None:
    rotary, joint = _classes()
    if type(attn) not in (rotary, joint):
        return f"{type(attn).__name__} (only {rotary.__name__} and {joint.__name__} are fused)"
    extra = sorted(set(attn.submodules) - {"q", "k", "v", "o", "qkv"})
    if extra:
        return f"attention submodules {extra} (QK norms or gates)"
    for flag, what in _CONFIG_FLAGS.items():
        if getattr(attn.config, flag, False):
            return what
    hf = attn.original_component
    for name, what in _HF_ATTRIBUTES.items():
        if getattr(hf, name, None) is not None:
            return what
    hf_cfg = getattr(hf, "config", None)
    if getattr(hf_cfg, "clip_qkv", None) is not None:
        return "clipped Q/K/V"
    rope = getattr(hf_cfg, "rope_parameters", None)
    if isinstance(rope, dict) and rope.get("llama_4_scaling_beta") is not None:
        return "llama-4 query scaling"
    if getattr(attn, "_reorder_and_upcast_attn", False):
        return "float32 scores (reorder_and_upcast_attn)"
    if not attn.is_causal or attn.is_cross_attention:
        return "bidirectional or cross attention"
    return None


def bridge_unsupported_reason(model: Any) -> str | None:
    """Why the fused path cannot run the bridge ``model``'s attention, or ``None`` when it can."""
    for layer, block in enumerate(model.blocks):
        reason = _layer_reason(block.attn)
        if reason is not None:
            return f"layer {layer}: {reason}"
    return None


# (weak reference to the last Hugging Face mask read, its version, q_len, k_len, the SDPA mask): one
# forward hands the same 4-D mask to every layer, so it is read once per forward.
_LAST_MASK: "tuple[weakref.ref[Tensor], int, int, int, Tensor | None] | None" = None


def _read_mask(hf_mask: Tensor, q_len: int, k_len: int) -> Tensor | None:
    mask = hf_mask[..., :k_len]
    if mask.shape[-2] != q_len:
        mask = mask[..., -q_len:, :]
    allowed = mask if mask.dtype == torch.bool else mask > torch.finfo(mask.dtype).min / 2
    if mask.dtype != torch.bool and not bool(((mask == 0) | ~allowed).all()):
        raise NotImplementedError("an additive attention mask with biases")  # not Hugging Face's 0 / min mask
    if torch.equal(allowed, causal_mask(q_len, k_len, mask.device).expand_as(allowed)):
        return None
    return allowed


def sdpa_mask(hf_mask: "Float[Tensor, 'batch 1 q k'] | None", q_len: int, k_len: int) -> "Bool[Tensor, 'batch 1 q k'] | None":
    """SDPA's bool mask (True = attend) from the 4-D mask Hugging Face passes an attention layer
    (additive 0 / dtype minimum, or bool), or ``None`` when it is plain lower-right causal.

    >>> hf = torch.triu(torch.full((4, 4), torch.finfo(torch.float32).min), diagonal=1)[None, None]
    >>> sdpa_mask(hf, 4, 4) is None
    True
    >>> hf[0, 0, :, 0] = torch.finfo(torch.float32).min  # key 0 is padding
    >>> sdpa_mask(hf, 4, 4)[0, 0, 3].tolist()
    [False, True, True, True]
    """
    global _LAST_MASK
    if hf_mask is None:
        return None
    version = -1 if hf_mask.is_inference() else hf_mask._version
    last = _LAST_MASK  # read once: another thread may replace it
    if last is not None and last[0]() is hf_mask and last[1:4] == (version, q_len, k_len):
        return last[4]
    out = _read_mask(hf_mask, q_len, k_len)
    _LAST_MASK = (weakref.ref(hf_mask), version, q_len, k_len, out)
    return out


def _dropout(self: Any) -> float:
    """The layer's attention dropout probability (Hugging Face's float or GPT-2's ``nn.Dropout``)."""
    hf = self.original_component
    p = getattr(hf, "attention_dropout", None)
    if p is None:
        p = getattr(getattr(hf, "attn_dropout", None), "p", 0.0)
    return float(p) if isinstance(p, (int, float)) else 0.0


def _eager_call(self: Any, kwargs: dict, head_dim: int | None) -> bool:
    """Whether this call must run the bridge's eager forward (see the module docstring);
    ``head_dim`` ``None`` for attention without rotary embeddings."""
    if needs_eager(self) or (self.training and _dropout(self) > 0.0):
        return True
    mask = kwargs.get("attention_mask")
    if mask is not None and mask.ndim != 4:
        return True
    if head_dim is None:
        return False
    return kwargs.get("position_embeddings") is None or kwargs["position_embeddings"][0].shape[-1] != head_dim


def _attend(self: Any, q: Tensor, k: Tensor, v: Tensor, hf_mask: Tensor | None, scale: float) -> Tensor:
    """SDPA of ``q`` ``[batch, head, q, d_head]`` over every cached + new ``k``, ``v`` ``[batch,
    kv_head, k, d_head]`` with the Hugging Face mask and blocked edges; ``hook_pattern`` observed
    beside it. Returns ``z`` ``[batch, head, q, d_head]``."""
    q_len, k_len = q.shape[2], k.shape[2]
    try:
        mask = sdpa_mask(hf_mask, q_len, k_len)
    except NotImplementedError:
        raise NotImplementedError(f"{self.name}: the fused path got an additive attention mask with biases; "
                                  "run this model outside fused_attention") from None
    mask = with_blocked_edges(self, mask, n_rows=q.shape[0], n_heads=q.shape[1], q_len=q_len, k_len=k_len,
                              device=q.device)
    v = v.to(q.dtype)
    z = causal_sdpa(q, k, v, mask, scale=scale, gqa=q.shape[1] != k.shape[1], block=query_block(q, k, v))
    if has_hooks(self.hook_pattern):  # observed, not switched to eager (rhlens.adapter.observe)
        z = pattern_beside(self, q, k, v, mask, z, scale=scale)
    return z


def bridge_fused_forward(self: Any, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor | None]:
    """Drop-in for ``PositionEmbeddingsAttentionBridge.forward``: ``hidden_states`` ``[batch, pos,
    d_model]`` in, ``(attention output [batch, pos, d_model], None)`` out (no attention weights; the
    eager forward's pair when it runs)."""
    hf_attn = self.original_component
    head_dim = int(hf_attn.head_dim)
    if args and "hidden_states" not in kwargs:
        kwargs["hidden_states"], args = args[0], args[1:]
    if args or _eager_call(self, kwargs, head_dim):
        return type(self).forward(self, *args, **kwargs)
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    x = self.hook_in(kwargs.pop("hidden_states"))  # [batch, pos, d_model]
    cos, sin = self._apply_position_embedding_hooks(kwargs.pop("position_embeddings"))
    hf_mask = kwargs.pop("attention_mask", None)
    shape = (*x.shape[:-1], -1, head_dim)
    q, k, v = (proj(x).view(shape).transpose(1, 2) for proj in (self.q, self.k, self.v))  # [b, (kv_)head, pos, d]
    q, k = apply_rotary_pos_emb(q, k, cos, sin)
    if hasattr(self, "hook_rot_q"):
        q, k = self.hook_rot_q(q), self.hook_rot_k(k)
    k, v = self._update_kv_cache(k, v, **kwargs)  # every cached + new key and value
    z = _attend(self, q, k, v, hf_mask, float(getattr(hf_attn, "scaling", head_dim ** -0.5)))
    z = z.transpose(1, 2).reshape(*x.shape[:-1], -1)  # [batch, pos, head * d_head]
    o_weight = getattr(getattr(self.o, "original_component", None), "weight", None)
    if isinstance(o_weight, Tensor) and o_weight.dtype.is_floating_point and z.dtype != o_weight.dtype:
        z = z.to(o_weight.dtype)
    return self.hook_out(self.o(z)), None


def joint_qkv_fused_forward(self: Any, *args: Any, **kwargs: Any) -> Any:
    """Drop-in for ``JointQKVAttentionBridge.forward`` (GPT-2-shaped attention): ``hook_in``, the split
    q/k/v projections (``hook_q/k/v`` fire), the KV cache, SDPA (:func:`_attend`), the output
    projection (``hook_z``), ``hook_hidden_states`` and ``hook_out``, as the eager forward."""
    if _eager_call(self, kwargs, None):
        return type(self).forward(self, *args, **kwargs)
    x = self._apply_attention_input_hook(*args, **kwargs)  # [batch, pos, d_model]
    n_heads = int(self.config.n_heads)
    n_kv = int(getattr(self.config, "n_key_value_heads", None) or n_heads)
    q, k, v, batch, pos, head_dim = self._reshape_qkv_to_heads(self.q(x), self.k(x), self.v(x), n_heads, n_kv)
    k, v = self._update_kv_cache(k, v, **kwargs)
    scale = head_dim ** -0.5
    if getattr(self.config, "scale_attn_by_inverse_layer_idx", False) and self._layer_idx is not None:
        scale /= float(self._layer_idx + 1)
    z = _attend(self, q, k, v, kwargs.get("attention_mask"), scale)
    out = self._apply_output_projection(z.transpose(1, 2).reshape(batch, pos, n_heads * head_dim))
    return self._process_output((out, None))


def bridge_forward_for(attn: Any) -> Any:
    """The fused forward for the bridge attention module ``attn`` (a supported one)."""
    rotary, _ = _classes()
    return bridge_fused_forward if type(attn) is rotary else joint_qkv_fused_forward


BRIDGE_FORWARDS = (bridge_fused_forward, joint_qkv_fused_forward)
"""The fused forwards a bridge's attention module runs inside ``fused_attention``."""
