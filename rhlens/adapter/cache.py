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
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache
from transformers import DynamicCache

from rhlens.adapter.core import model_device, model_kind

_FIXED = "_rhlens_kv_cache_enabled"


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
        **{_cache_argument(model): cache.hf_cache},
    )


def _cache_argument(bridge: Any) -> str:
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
