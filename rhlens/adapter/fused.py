"""Fused attention: TransformerLens attention through ``torch.nn.functional.scaled_dot_product_attention``.

TransformerLens computes attention eagerly (scores, mask, softmax, pattern, weighted sum) so every
intermediate can be hooked. Training and plain evaluation need none of them; inside
:func:`fused_attention` every attention layer instead runs

    q, k, v  = the layer's own projections (``hook_q``/``hook_k``/``hook_v`` still fire)
    q, k     = the layer's own rotary (``hook_rot_q``/``hook_rot_k`` still fire)
    z        = SDPA(q, k, v, causal & padding mask & ~blocked edges, scale = 1 / attn_scale, GQA)
    z        = hook_z(z)                      (``[batch, pos, head, d_head]``, per query head)
    out      = z @ W_O + b_O

which equals the eager path to float rounding (logits within 1e-5; tested with grouped-query
attention and left/right padding). With a KV cache only the new keys are rotated (the rotated
cached ones are kept beside the cache, :func:`rhlens.adapter.cache.append_rotated_keys`), and SDPA
gets no mask it does not need (:func:`rhlens.adapter.causal_sdpa.causal_sdpa`: the causal kernel
when nothing is padded, query blocks on the CPU). ``hook_z`` fires on the fused path (SDPA's output is per head
before the output projection), so interventions on head outputs (zero or mean knockout,
patching) run the same kernels as the plain model. A ``hook_pattern`` hook sees the pattern
computed beside the kernel from the same queries and keys, and a read-only one changes nothing
(:mod:`rhlens.adapter.observe`). What the fused path skips, ``hook_attn_scores`` and
``hook_result``, is watched: a call that finds a hook on either runs the eager TransformerLens
forward instead, so an analyzer inside the context still sees every hook. Attention-edge blocking registered
with :func:`blocked_edges` is applied on both paths (a mask on the fused path, the dtype's most
negative score on the eager one). Layers whose configuration the fused path does not implement
(soft-capped scores, ALiBi, attention sinks, local windows, ...) are reported by
:func:`fused_unsupported_reason`.

>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_key_value_heads=2)
>>> tokens = model.to_tokens("The sky is blue.")
>>> with fused_attention(model):
...     fused = model(tokens)
>>> (fused - model(tokens)).abs().max() < 1e-5
tensor(True)

On a ``TransformerBridge`` (Llama-shaped attention, TransformerLens 3.9 and 4.x) the same context
runs :func:`rhlens.adapter.bridge_fused.bridge_fused_forward` in each attention layer, with the same
contract (hooks that fire, eager fallback, blocked edges, observed patterns).

Memory: SDPA never materialises the ``[batch, head, pos, pos]`` pattern (on CUDA and in PyTorch's
CPU flash kernel), so long contexts fit where the eager path does not.
"""

import contextlib
import types
import weakref
from typing import Any, Callable, Iterator, Sequence

import torch
import torch.nn.functional as F
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens.adapter.bridge_fused import BRIDGE_FORWARDS, bridge_forward_for, bridge_unsupported_reason
from rhlens.adapter.cache import append_rotated_keys, drop_rotated_keys
from rhlens.adapter.causal_sdpa import causal_sdpa, query_block
from rhlens.adapter.core import UnsupportedModelError, attention_module, hook_name, hooks, model_kind
from rhlens.adapter.fused_edges import (
    EDGES_ATTR, OWN_SCORE_HOOKS_ATTR, EdgeFn, check_alive, has_hooks, needs_eager, with_blocked_edges,
)
from rhlens.adapter.observe import pattern_beside


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
        if model_kind(model) == "bridge":
            return bridge_unsupported_reason(model)
    except UnsupportedModelError as err:
        return str(err)
    for layer, block in enumerate(model.blocks):
        reason = _layer_reason(block.attn)
        if reason is not None:
            return f"layer {layer}: {reason}"
    return None


def masked_scores(scores: Float[Tensor, "... k_pos"]) -> Bool[Tensor, "... k_pos"]:
    """True where pre-softmax attention scores are masked out.

    TransformerLens masks with ``-inf``; Hugging Face eager attention (TransformerBridge) adds the
    dtype's most negative finite value. Both count as masked (anything at or below half the dtype's
    minimum, or NaN).
    """
    floor = torch.finfo(scores.dtype).min / 2
    return (scores <= floor) | torch.isnan(scores)


def blocked_value(scores: Tensor) -> float:
    """The score written to block an edge on the eager path: the dtype's most negative finite value.

    ``exp`` of it underflows to exactly 0 next to any finite score, so the softmax renormalises
    over the remaining keys exactly as ``-inf`` would, but a row can never become all ``-inf``
    (which gives NaN in Hugging Face's eager softmax and poisons later positions through ``0 * NaN``).
    """
    return torch.finfo(scores.dtype).min


@contextlib.contextmanager
def blocked_edges(model: Any, edges: "dict[int, EdgeFn]", *, name: str = "block_attention") -> Iterator[Any]:
    """Block attention edges in the layers of ``edges`` (``{layer: EdgeFn}``) inside the block.

    On the fused path the edges are removed from SDPA's mask; on the eager path (a hooked pattern,
    a TransformerBridge, an unsupported layer) a ``hook_attn_scores`` hook sets their scores to
    :func:`blocked_value`. Either way a blocked edge carries exactly 0 weight and the row is
    renormalised over its other keys, and a row left with no key raises ``ValueError`` (naming
    ``name``). A forward in which no edge is blocked runs exactly as without the context.
    """
    def eager_hook(layer: int, fn: EdgeFn):
        attn = attention_module(model, layer)

        def hook(scores: Tensor, hook: Any) -> Tensor | None:
            b, _, q_len, k_len = scores.shape
            block = fn(b, q_len, k_len, scores.device)
            if block is None or not bool(block.any()):
                return None
            allowed = ~masked_scores(scores)
            check_alive(attn, allowed, block.expand_as(allowed))
            return torch.where(block & allowed, torch.full_like(scores, blocked_value(scores)), scores)

        return hook

    entries = []
    try:
        for layer, fn in sorted(edges.items()):
            attn = attention_module(model, layer)
            entry = (layer, name, fn)
            attn.__dict__.setdefault(EDGES_ATTR, []).append(entry)
            attn.__dict__[OWN_SCORE_HOOKS_ATTR] = attn.__dict__.get(OWN_SCORE_HOOKS_ATTR, 0) + 1
            entries.append((attn, entry))
        fwd = [(hook_name("attn_scores", layer), eager_hook(layer, fn)) for layer, fn in sorted(edges.items())]
        with hooks(model, fwd):
            yield model
    finally:
        for attn, entry in entries:
            attn.__dict__[EDGES_ATTR].remove(entry)
            attn.__dict__[OWN_SCORE_HOOKS_ATTR] -= 1


RowFn = Callable[[int, torch.device], "Bool[Tensor, 'batch q'] | None"]
"""``rows(q_len, device)``: True at the query rows (of the current forward) an edit applies to,
``[batch, q_len]``, or ``None`` for every row."""


def uniform_attention_hooks(model: Any, layer: int, heads: Sequence[int], rows: RowFn) -> list:
    """Hooks that make query heads ``heads`` of ``layer`` attend uniformly (Wu et al.'s masking:
    pre-softmax scores set to 0, masked keys stay masked) at the query rows ``rows`` selects.

    On a HookedTransformer the fused path supports, the head's rotated query is set to 0 (so every
    score is exactly 0 on the eager and on the fused path alike, and the run keeps the kernels of
    the plain model); otherwise ``hook_attn_scores`` is edited (eager).
    """
    idx = list(heads)
    if fused_unsupported_reason(model) is None:
        rotary = model.cfg.positional_embedding_type == "rotary"

        def q_hook(q: Tensor, hook: Any) -> Tensor:  # [batch, pos, head, d_head]
            sel = rows(q.shape[1], q.device)
            q = q.clone()
            if sel is None:
                q[:, :, idx] = 0
            else:
                q[:, :, idx] = torch.where(sel[:, :, None, None], torch.zeros_like(q[:, :, idx]), q[:, :, idx])
            return q

        return [(hook_name("rot_q" if rotary else "q", layer), q_hook)]

    def scores_hook(scores: Tensor, hook: Any) -> Tensor:  # [batch, head, q, k]
        sel_rows = rows(scores.shape[2], scores.device)
        sel = scores[:, idx]
        zero = ~masked_scores(sel)
        if sel_rows is not None:
            zero = zero & sel_rows[:, None, :, None]
        scores = scores.clone()
        scores[:, idx] = torch.where(zero, torch.zeros_like(sel), sel)
        return scores

    return [(hook_name("attn_scores", layer), scores_hook)]


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


# (weak reference to the last attention mask checked, its in-place version, whether it holds
# padding): one forward hands the same mask tensor to every layer, so the check (a host sync on a
# GPU) runs once per forward, not once per layer. Inference tensors keep no version (-1).
_LAST_PADDING_CHECK: "tuple[weakref.ref[Tensor], int, bool] | None" = None


def _version(t: Tensor) -> int:
    return -1 if t.is_inference() else t._version


def _has_padding(attention_mask: Tensor | None) -> bool:
    """Whether ``attention_mask`` ``[batch, k_pos]`` has a 0 (a padded key)."""
    global _LAST_PADDING_CHECK
    if attention_mask is None:
        return False
    last = _LAST_PADDING_CHECK  # read once: another thread may replace it
    if last is not None and last[0]() is attention_mask and last[1] == _version(attention_mask):
        return last[2]
    padded = not bool(attention_mask.all())
    _LAST_PADDING_CHECK = (weakref.ref(attention_mask), _version(attention_mask), padded)
    return padded


def _keys_and_values(self: Any, q: Tensor, k: Tensor, v: Tensor, entry: Any, attention_mask: Tensor | None):
    """Rotated queries, and all (cached + new, rotated) keys and values; the new ones are cached.

    Only the new keys are rotated (:func:`rhlens.adapter.cache.append_rotated_keys`) unless a hook
    on ``hook_rot_k`` could change them, in which case all keys are rotated and hooked at each
    call as TransformerLens does."""
    offset = 0 if entry is None else entry.past_keys.size(1)
    if self.cfg.positional_embedding_type != "rotary":
        return q, *((k, v) if entry is None else entry.append(k, v))
    q = self.hook_rot_q(self.apply_rotary(q, offset, attention_mask))
    if entry is not None and not has_hooks(self.hook_rot_k):
        return q, *append_rotated_keys(self, entry, k, v, attention_mask)
    if entry is not None:
        k, v = entry.append(k, v)
    return q, self.hook_rot_k(self.apply_rotary(k, 0, attention_mask)), v


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
    if additive_attention_mask is not None or position_bias is not None or needs_eager(self):
        drop_rotated_keys(past_kv_cache_entry)  # the eager forward appends raw keys only
        return type(self).forward(
            self, query_input, key_input, value_input, past_kv_cache_entry,
            additive_attention_mask, attention_mask, position_bias,
        )
    q, k, v = self.calculate_qkv_matrices(query_input, key_input, value_input)  # [b, pos, (kv_)head, d_head]
    q, k, v = _keys_and_values(self, q, k, v, past_kv_cache_entry, attention_mask)
    q_len, k_len = q.shape[1], k.shape[1]
    qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.to(q.dtype).transpose(1, 2)  # [b, head, pos, d_head]
    mask = _padding_causal_mask(attention_mask, q_len, k_len, k_len - q_len, qh.device) if _has_padding(attention_mask) else None
    mask = with_blocked_edges(self, mask, n_rows=qh.shape[0], n_heads=qh.shape[1], q_len=q_len, k_len=k_len,
                              device=qh.device)
    z = causal_sdpa(qh, kh, vh, mask, scale=1.0 / self.attn_scale, gqa=qh.shape[1] != kh.shape[1],
                    block=query_block(qh, kh, vh))
    if has_hooks(self.hook_pattern):  # observed, not switched to eager (rhlens.adapter.observe)
        z = pattern_beside(self, qh, kh, vh, mask, z, scale=1.0 / float(self.attn_scale))
    z = self.hook_z(z.transpose(1, 2))  # [b, q_pos, head, d_head], as on the eager path
    z = z.reshape(z.shape[0], q_len, -1)  # [b, q_pos, head * d_head]
    w_o = self.W_O  # [head, d_head, d_model]
    w = w_o.reshape(-1, w_o.shape[-1]).T  # [d_model, head * d_head]
    return F.linear(z.to(w.dtype), w, self.b_O)


@contextlib.contextmanager
def fused_attention(model: Any, *, strict: bool = True) -> Iterator[Any]:
    """Run every attention layer of ``model`` through SDPA inside the ``with`` block.

    Args:
        model: a HookedTransformer or a TransformerBridge (:mod:`rhlens.adapter.bridge_fused`).
        strict: raise :class:`FusedAttentionUnsupported` when some layer's configuration is not
            implemented by the fused path; with ``strict=False`` the context does nothing then.

    The original forwards are restored on exit, also when the body raises; nested contexts are
    fine. Calls that find hooks on ``hook_attn_scores``/``hook_result`` use the eager path, so
    hooks always see what they expect; ``hook_z`` fires on the fused path and ``hook_pattern``
    beside it (:mod:`rhlens.adapter.observe`).
    """
    reason = fused_unsupported_reason(model)
    if reason is not None:
        if strict:
            raise FusedAttentionUnsupported(f"Fused attention does not support this model ({reason}); run it eagerly")
        yield model
        return
    forward_for = (lambda attn: _fused_forward) if model_kind(model) == "hooked" else bridge_forward_for
    patched: list[tuple[Any, Any]] = []
    try:
        for block in model.blocks:
            attn = block.attn  # its __dict__: a bridge component forwards attribute writes to its HF module
            patched.append((attn, attn.__dict__.get("forward", None)))
            attn.__dict__["forward"] = types.MethodType(forward_for(attn), attn)
        yield model
    finally:
        for attn, previous in reversed(patched):
            if previous is None:
                attn.__dict__.pop("forward", None)
            else:
                attn.__dict__["forward"] = previous


def is_fused(model: Any) -> bool:
    """Whether layer 0 currently runs the fused path (i.e. inside :func:`fused_attention`)."""
    forward = model.blocks[0].attn.__dict__.get("forward")
    return getattr(forward, "__func__", None) in (_fused_forward, *BRIDGE_FORWARDS)
