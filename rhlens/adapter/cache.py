"""Key/value caches for chunked prefill and incremental decoding.

For a ``HookedTransformer`` this is TransformerLens's ``TransformerLensKeyValueCache``: feeding a
long prompt in chunks through it gives the same logits and attention rows as one pass while
attention memory per layer is ``O(chunk x context)`` instead of ``O(context^2)``.

A ``TransformerBridge`` gets a :class:`RecomputeCache`, which stores the tokens seen so far and
re-runs the whole sequence at each call: correct (hooks see every query row, the last row is the
newest token), but quadratic. Callers read only the rows of the new positions.
"""

from dataclasses import dataclass, field
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from rhlens.adapter.core import model_device, model_kind


@dataclass
class RecomputeCache:
    """Tokens and attention mask seen so far, for models without an incremental cache."""

    tokens: Tensor | None = None
    attention_mask: Tensor | None = None
    extra: dict = field(default_factory=dict)

    def append(self, tokens: Tensor, attention_mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
        if attention_mask is None:
            attention_mask = torch.ones_like(tokens)
        if self.tokens is None:
            self.tokens, self.attention_mask = tokens, attention_mask
        else:
            self.tokens = torch.cat([self.tokens, tokens], dim=1)
            self.attention_mask = torch.cat([self.attention_mask, attention_mask], dim=1)
        return self.tokens, self.attention_mask


def new_kv_cache(model: Any, batch_size: int) -> Any:
    """An empty cache for ``batch_size`` rows, of the kind :func:`rhlens.adapter.forward` takes."""
    if model_kind(model) == "hooked":
        from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

        return TransformerLensKeyValueCache.init_cache(model.cfg, model_device(model), batch_size)
    return RecomputeCache()


def bridge_forward_with_cache(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    *,
    attention_mask: Int[Tensor, "batch pos"] | None,
    cache: RecomputeCache,
) -> Float[Tensor, "batch pos d_vocab"]:
    """Logits of the new ``tokens`` given everything in ``cache`` (which is extended)."""
    if not isinstance(cache, RecomputeCache):
        raise TypeError(f"A TransformerBridge needs a RecomputeCache, got {type(cache).__name__}")
    all_tokens, all_mask = cache.append(tokens, attention_mask)
    logits = model(all_tokens, return_type="logits", attention_mask=all_mask, prepend_bos=False)
    return logits[:, -tokens.shape[1] :]
