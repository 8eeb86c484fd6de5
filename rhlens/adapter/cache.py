"""Key/value caches for chunked prefill and incremental decoding, and :func:`forward` through them.

For a ``HookedTransformer`` this is TransformerLens's ``TransformerLensKeyValueCache``; for a
``TransformerBridge`` a :class:`BridgeKVCache` around Hugging Face's ``DynamicCache``. Feeding a
long prompt in chunks through either gives the same logits and attention rows as one pass while
attention memory per layer is ``O(chunk x context)`` instead of ``O(context^2)``. In both, a
pattern hook sees ``[batch, head, new positions, past + new positions]``.

TransformerLens 3.9's bridge attention reads the cache from a ``past_key_values`` argument that
newer ``transformers`` releases pass as ``cache``: :func:`enable_bridge_kv_cache` (applied by
:func:`new_kv_cache`) makes each attention module of that bridge read either name.
"""

import inspect
import types
import weakref
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformers import DynamicCache

from rhlens.adapter.core import model_device, model_kind

_FIXED = "_rhlens_kv_cache_enabled"
_ROTATED = "_rhlens_rotated_keys"


def enable_bridge_kv_cache(bridge: Any) -> Any:
    """Let ``bridge``'s attention modules find a KV cache passed as ``cache=`` (idempotent).

    Without it (``transformers`` >= 5.2x with TransformerLens 3.9) the cache is silently never
    filled, so chunked prefill and cached decoding attend to the current chunk only. Only this
    bridge's modules are changed (no global patch); where the names agree it changes nothing.
    """
    if getattr(bridge, _FIXED, False):
        return bridge
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    def wrap(original: Any) -> Any:
        def _update_kv_cache(self: Any, k: Tensor, v: Tensor, **kwargs: Any) -> Any:
            if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
                kwargs["past_key_values"] = kwargs["cache"]
            return original(self, k, v, **kwargs)

        return _update_kv_cache

    for module in bridge.modules():
        if isinstance(module, AttentionBridge) and "_update_kv_cache" not in vars(module):
            module._update_kv_cache = types.MethodType(wrap(type(module)._update_kv_cache), module)
    object.__setattr__(bridge, _FIXED, True)
    return bridge


@dataclass
class BridgeKVCache:
    """A Hugging Face ``DynamicCache`` plus the attention mask of the positions it holds."""

    hf_cache: Any
    attention_mask: Tensor | None = None

    def extend_mask(self, attention_mask: Tensor) -> Tensor:
        """Append the new positions' mask; return the mask over past + new positions."""
        if self.attention_mask is None:
            self.attention_mask = attention_mask
        else:
            self.attention_mask = torch.cat([self.attention_mask, attention_mask], dim=1)
        return self.attention_mask


def new_kv_cache(model: Any, batch_size: int) -> Any:
    """An empty cache for ``batch_size`` rows, of the kind :func:`rhlens.adapter.forward` takes."""
    if model_kind(model) == "hooked":
        return TransformerLensKeyValueCache.init_cache(model.cfg, model_device(model), batch_size)
    enable_bridge_kv_cache(model)
    return BridgeKVCache(hf_cache=DynamicCache())


def bridge_forward_with_cache(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch pos"] | None,
    cache: BridgeKVCache,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of the new ``tokens`` given the positions in ``cache`` (which is extended)."""
    if not isinstance(cache, BridgeKVCache):
        raise TypeError(
            f"A TransformerBridge needs a cache from rhlens.adapter.new_kv_cache(bridge, batch), got {type(cache).__name__}"
        )
    if attention_mask is None:
        attention_mask = torch.ones_like(tokens)
    full_mask = cache.extend_mask(attention_mask)
    return model(
        tokens, return_type="logits", attention_mask=full_mask, prepend_bos=False, use_cache=True,
        **{cache_argument(model): cache.hf_cache},
    )


def cache_argument(bridge: Any) -> str:
    """The Hugging Face model's name for the KV cache argument: ``cache`` in transformers >= 5.2x,
    ``past_key_values`` before."""
    params = inspect.signature(bridge.original_model.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def forward(
    model: Any,
    tokens: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    past_kv_cache: Any = None,
) -> torch.Tensor:
    """Logits ``[batch, pos, d_vocab]`` for ``tokens`` ``[batch, pos]``.

    ``attention_mask`` ``[batch, past + pos]`` is 1 at real tokens and 0 at padding (left
    padding). ``past_kv_cache`` (from :func:`rhlens.adapter.new_kv_cache`) continues from cached
    positions. BOS is never added here: ``tokens`` are used as given.
    """
    kind = model_kind(model)
    if kind == "hooked":
        return model(
            tokens,
            return_type="logits",
            attention_mask=attention_mask,
            past_kv_cache=past_kv_cache,
            prepend_bos=False,
        )
    if past_kv_cache is not None:
        return bridge_forward_with_cache(model, tokens, attention_mask=attention_mask, cache=past_kv_cache)
    return model(tokens, return_type="logits", attention_mask=attention_mask, prepend_bos=False)


@dataclass
class _RotatedKeys:
    """Rotated copies of a cache entry's keys and what they were computed from."""

    keys: Tensor  # [batch, pos, kv_head, d_head], rotated
    source: "weakref.ref[Tensor]"  # the entry's raw ``past_keys`` they rotate
    mask: Tensor | None  # the attention mask over those positions (their position ids)
    tables: tuple[Tensor, Tensor]  # the layer's ``rotary_cos``, ``rotary_sin`` used


def _still_valid(side: "_RotatedKeys | None", attn: Any, entry: Any, attention_mask: Tensor | None, past: int) -> bool:
    if side is None or side.source() is not entry.past_keys or side.keys.shape[1] != past:
        return False
    if side.tables[0] is not attn.rotary_cos or side.tables[1] is not attn.rotary_sin:
        return False
    if (side.mask is None) != (attention_mask is None):
        return False
    return side.mask is None or torch.equal(side.mask, attention_mask[:, :past])


def append_rotated_keys(
    attn: Any,
    entry: Any,
    keys: Float[Tensor, "batch new kv_head d_head"],
    values: Float[Tensor, "batch new kv_head d_head"],
    attention_mask: Int[Tensor, "batch past_and_new"] | None,
) -> tuple[Float[Tensor, "batch past_and_new kv_head d_head"], Float[Tensor, "batch past_and_new kv_head d_head"]]:
    """Append raw ``keys``/``values`` to a TransformerLens cache ``entry``; return every rotated key
    and every value, rotating only the new keys.

    TransformerLens caches keys before rotation and re-rotates all of them at each forward
    (``attn.apply_rotary(all keys, 0, mask)``). Rotation is elementwise per position, and a cached
    position's rotary id depends only on the mask up to it, so rotating the new keys at offset
    ``past`` and appending them to the rotated keys kept beside ``entry`` gives the same keys. The
    raw keys are still appended to ``entry`` (its eager forward needs them). The kept keys are
    used only while they match ``entry`` (same raw keys, mask over them and rotary tables);
    otherwise all keys are rotated again, as TransformerLens does. A frozen entry is not changed.
    """
    past = entry.past_keys.shape[1]
    side = entry.__dict__.get(_ROTATED)
    valid = _still_valid(side, attn, entry, attention_mask, past)
    all_keys, all_values = entry.append(keys, values)
    rotated = None
    if valid:
        new = attn.apply_rotary(keys, past, attention_mask)  # may grow (replace) the rotary tables
        if side.tables[0] is attn.rotary_cos and side.tables[1] is attn.rotary_sin:
            rotated = torch.cat([side.keys, new], dim=1)
    if rotated is None:
        rotated = attn.apply_rotary(all_keys, 0, attention_mask)
    if not entry.frozen:
        entry.__dict__[_ROTATED] = _RotatedKeys(rotated, weakref.ref(entry.past_keys), attention_mask,
                                                (attn.rotary_cos, attn.rotary_sin))
    return rotated, all_values


def drop_rotated_keys(entry: Any) -> None:
    """Forget the rotated keys kept beside ``entry`` (before a forward that appends to it eagerly)."""
    if entry is not None:
        entry.__dict__.pop(_ROTATED, None)
