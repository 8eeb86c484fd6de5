"""Fused attention: TransformerLens attention through ``torch.nn.functional.scaled_dot_product_attention``.

TransformerLens computes attention eagerly (scores, mask, softmax, pattern, weighted sum) so every
intermediate can be hooked. Training and plain evaluation need none of them; inside
:func:`fused_attention` every attention layer instead runs

    q, k, v  = the layer's own projections (``hook_q``/``hook_k``/``hook_v`` still fire)
    q, k     = the layer's own rotary (``hook_rot_q``/``hook_rot_k`` still fire)
    z        = SDPA(q, k, v, causal & padding mask, scale = 1 / attn_scale, grouped-query)
    out      = z @ W_O + b_O

which equals the eager path to float rounding (logits within 1e-5; tested with grouped-query
attention and left/right padding). What the fused path skips, ``hook_attn_scores``,
``hook_pattern``, ``hook_z`` and ``hook_result``, is watched: a call that finds a hook on any of
them runs the eager TransformerLens forward instead, so an analyzer (or ``run_with_cache``) inside
the context still sees every hook. Layers whose configuration the fused path does not implement
(soft-capped scores, ALiBi, attention sinks, local windows, ...) are reported by
:func:`fused_unsupported_reason`.

>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_key_value_heads=2)
>>> tokens = model.to_tokens("The sky is blue.")
>>> with fused_attention(model):
...     fused = model(tokens)
>>> (fused - model(tokens)).abs().max() < 1e-5
tensor(True)

Memory: SDPA never materialises the ``[batch, head, pos, pos]`` pattern (on CUDA and in PyTorch's
CPU flash kernel), so long contexts fit where the eager path does not.
"""

import contextlib
import types
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from rhlens.adapter.core import UnsupportedModelError, model_kind

# Hook points whose values the fused path never computes.
_SKIPPED_HOOKS = ("hook_attn_scores", "hook_pattern", "hook_z", "hook_result")
_QK_NORM_ON_FULL_VECTORS = ("OlmoeForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM")


class FusedAttentionUnsupported(UnsupportedModelError):
    """The model's attention uses a feature the fused path does not implement."""


def _layer_reason(attn: Any) -> str | None:
    cfg = attn.cfg
    checks = [
        (getattr(cfg, "load_in_4bit", False), "4-bit weights"),
        (getattr(cfg, "use_attn_result", False), "use_attn_result (per-head results are requested)"),
        ((getattr(cfg, "attn_scores_soft_cap", -1.0) or -1.0) > 0, "soft-capped attention scores"),
        (getattr(cfg, "use_attention_sinks", False), "attention sinks"),
        (cfg.positional_embedding_type in ("alibi", "relative_positional_bias"), f"{cfg.positional_embedding_type} positions"),
        (getattr(attn, "attn_type", "global") != "global", "local (windowed) attention"),
        (cfg.original_architecture in _QK_NORM_ON_FULL_VECTORS, "OLMo-style QK norm"),
        (getattr(cfg, "clip_qkv", None) is not None, "clipped Q/K/V"),
        (getattr(cfg, "use_logn_attn", False), "log-n query scaling"),
        (getattr(cfg, "use_dynamic_ntk_rope", False) is True and cfg.positional_embedding_type == "rotary", "dynamic NTK rotary"),
        ((getattr(attn, "_attention_dir_override", None) or cfg.attention_dir) != "causal", "bidirectional attention"),
    ]
    for failed, what in checks:
        if failed:
            return what
    return None


def fused_unsupported_reason(model: Any) -> str | None:
    """Why :func:`fused_attention` cannot run ``model``, or ``None`` when it can."""
    try:
        if model_kind(model) != "hooked":
            return "TransformerBridge models keep Hugging Face attention modules"
    except UnsupportedModelError as err:
        return str(err)
    for layer, block in enumerate(model.blocks):
        reason = _layer_reason(block.attn)
        if reason is not None:
            return f"layer {layer}: {reason}"
    return None


def _has_hooks(module: torch.nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def _needs_eager(attn: Any) -> bool:
    for name in _SKIPPED_HOOKS:
        point = getattr(attn, name, None)
        if point is not None and _has_hooks(point):
            return True
    return False


def _padding_causal_mask(
    attention_mask: torch.Tensor | None, q_len: int, k_len: int, offset: int, device: torch.device
) -> torch.Tensor:
    """Bool ``[batch or 1, 1, q_len, k_len]``: True where query ``offset + i`` may attend key ``j``."""
    q_pos = torch.arange(offset, offset + q_len, device=device)
    k_pos = torch.arange(k_len, device=device)
    mask = (k_pos[None, :] <= q_pos[:, None])[None, None]
    if attention_mask is not None:
        mask = mask & attention_mask.to(device=device, dtype=torch.bool)[:, None, None, :]
    return mask


def _fused_forward(
    self: Any,
    query_input: torch.Tensor,
    key_input: torch.Tensor,
    value_input: torch.Tensor,
    past_kv_cache_entry: Any = None,
    additive_attention_mask: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Drop-in for ``AbstractAttention.forward``: ``[batch, pos, d_model]`` in and out."""
    if additive_attention_mask is not None or position_bias is not None or _needs_eager(self):
        return type(self).forward(
            self, query_input, key_input, value_input, past_kv_cache_entry,
            additive_attention_mask, attention_mask, position_bias,
        )
    q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # [b, pos, (kv_)head, d_head]
    offset = 0
    if past_kv_cache_entry is not None:
        offset = past_kv_cache_entry.past_keys.size(1)
        k, v = past_kv_cache_entry.append(k, v)
    if self.cfg.positional_embedding_type == "rotary":
        q = self.hook_rot_q(self.apply_rotary(q, offset, attention_mask))
        k = self.hook_rot_k(self.apply_rotary(k, 0, attention_mask))
    q_len, k_len = q.shape[1], k.shape[1]
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.to(q.dtype).transpose(1, 2)  # [b, head, pos, d_head]
    gqa = qh.shape[1] != kh.shape[1]
    if attention_mask is None and offset == 0 and q_len == k_len:
        z = F.scaled_dot_product_attention(qh, kh, vh, is_causal=True, scale=1.0 / self.attn_scale, enable_gqa=gqa)
    else:
        mask = _padding_causal_mask(attention_mask, q_len, k_len, offset, qh.device)
        z = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=1.0 / self.attn_scale, enable_gqa=gqa)
    # [b, head, q_pos, d_head] -> [b, q_pos, head * d_head]
    z = z.transpose(1, 2).reshape(z.shape[0], q_len, -1)
    w_o = self.W_O  # [head, d_head, d_model]
    w = w_o.reshape(-1, w_o.shape[-1]).T  # [d_model, head * d_head]
    return F.linear(z.to(w.dtype), w, self.b_O)


@contextlib.contextmanager
def fused_attention(model: Any, *, strict: bool = True) -> Iterator[Any]:
    """Run every attention layer of ``model`` through SDPA inside the ``with`` block.

    Args:
        model: a HookedTransformer.
        strict: raise :class:`FusedAttentionUnsupported` when some layer's configuration is not
            implemented by the fused path; with ``strict=False`` the context does nothing then.

    The original forwards are restored on exit, also when the body raises; nested contexts are
    fine. Calls that find hooks on ``hook_attn_scores``/``hook_pattern``/``hook_z``/``hook_result``
    use the eager path, so hooks always see what they expect.
    """
    reason = fused_unsupported_reason(model)
    if reason is not None:
        if strict:
            raise FusedAttentionUnsupported(f"Fused attention does not support this model ({reason}); run it eagerly")
        yield model
        return
    patched: list[tuple[Any, Any]] = []
    try:
        for block in model.blocks:
            attn = block.attn
            previous = attn.__dict__.get("forward", None)
            attn.forward = types.MethodType(_fused_forward, attn)
            patched.append((attn, previous))
        yield model
    finally:
        for attn, previous in reversed(patched):
            if previous is None:
                del attn.forward
            else:
                attn.forward = previous


def is_fused(model: Any) -> bool:
    """Whether layer 0 currently runs the fused path (i.e. inside :func:`fused_attention`)."""
    forward = model.blocks[0].attn.__dict__.get("forward")
    return getattr(forward, "__func__", None) is _fused_forward
