"""A ``TransformerBridge``'s blocks from a given layer on, on a residual stream: :func:`bridge_forward_from_layer`.

:func:`rhlens.adapter.forward_from_layer` continues a forward from the residual entering block
``layer``. A HookedTransformer does it with ``start_at_layer``; a bridge's ``start_at_layer`` still
runs blocks ``0 .. layer - 1`` (TransformerLens 4.3 discards their output; with a KV cache it fills
their cache entries and returns logits). So rhlens walks the bridge's blocks itself, handing each
what the Hugging Face model's own forward hands its decoder layers:

    positions  = mask.cumsum(-1) - 1 at the new columns      (left padding: 0 at the first real token)
    mask4d     = 0 where key k <= query q (lower-right causal) and key k is real, dtype minimum elsewhere
    rotary     = the model's rotary embedding at those positions (Llama-shaped; GPT-2 adds learned
                 positions before the first block, so its residual already holds them)
    x          = block(x, attention_mask=mask4d, position_ids, position_embeddings, cache) for block in blocks[layer:]

which is what the HookedTransformer (``start_at_layer``) and the bridge's full forward compute at
every real position (tested to 1e-5, also in chunks with a cache). The cache
(:func:`rhlens.adapter.new_kv_cache`) gets entries for layers ``layer ..`` only; its attention mask
spans every column fed so far, so positions and the causal offset are read from it (the Hugging
Face cache's own length counts layer 0, which this never fills). Hooks of blocks ``layer ..`` fire
(``hook_resid_pre`` first); the embedding's, earlier blocks', the final norm's and the
unembedding's do not. Fused attention (:func:`rhlens.adapter.fused.fused_attention`) runs as in a
full forward. The Hugging Face families rhlens loads (Llama, Mistral, Qwen2, GPT-2) without
sliding-window layers are walked; :func:`bridge_layers_unsupported_reason` names what else is refused.

>>> import torch
>>> from rhlens.adapter import hook_name, hooks, model_kind
>>> from rhlens.models import as_bridge, tiny_llama
>>> model = tiny_llama(n_layers=2)
>>> model = model if model_kind(model) == "bridge" else as_bridge(model)
>>> tokens, seen = torch.tensor([[1, 5, 6, 7]]), {}
>>> with hooks(model, [(hook_name("resid_pre", 1), lambda x, hook: seen.update(x=x)),
...                    (hook_name("resid_post", 1), lambda x, hook: seen.update(out=x))]):
...     _ = model(tokens)
>>> out = bridge_forward_from_layer(model, seen["x"], 1, torch.ones_like(tokens))
>>> bool((out - seen["out"]).abs().max() < 1e-5)
True
"""

from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from rhlens.adapter.cache import BridgeKVCache, cache_argument
from rhlens.adapter.causal_sdpa import causal_mask


# The Hugging Face classes whose decoder layers take what bridge_forward_from_layer hands them (the families
# rhlens.models.hf loads).
_FAMILIES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "GPT2LMHeadModel")


def bridge_layers_unsupported_reason(model: Any) -> str | None:
    """Why :func:`bridge_forward_from_layer` cannot walk the bridge ``model``'s blocks, or ``None``."""
    hf = model.original_model
    if type(hf).__name__ not in _FAMILIES:
        return f"{type(hf).__name__} (only {', '.join(_FAMILIES)} are walked)"
    cfg = hf.config
    windowed = getattr(cfg, "sliding_window", None) is not None and getattr(cfg, "use_sliding_window", True)
    if windowed or set(getattr(cfg, "layer_types", None) or ()) - {"full_attention"}:
        return f"sliding-window attention (sliding_window={getattr(cfg, 'sliding_window', None)})"
    return None


def bridge_forward_from_layer(
    model: Any,
    resid: Float[Tensor, "batch pos d_model"],
    layer: int,
    attention_mask: Int[Tensor, "batch pos"],
    cache: BridgeKVCache | None = None,
) -> Float[Tensor, "batch pos d_model"]:
    """Blocks ``layer ..`` of the bridge ``model`` on ``resid`` (the residual entering block ``layer``);
    the last block's output (before the final norm). ``attention_mask`` covers ``resid``'s columns;
    ``cache`` holds the earlier columns (of layers ``layer ..``) and is extended."""
    reason = bridge_layers_unsupported_reason(model)
    if reason is not None:
        raise NotImplementedError(f"forward_from_layer on this TransformerBridge: {reason}; run the whole forward instead")
    if cache is not None and not isinstance(cache, BridgeKVCache):
        raise TypeError(f"A TransformerBridge needs a cache from rhlens.adapter.new_kv_cache(bridge, batch), got {type(cache).__name__}")
    full = cache.extend_mask(attention_mask) if cache is not None else attention_mask  # [batch, past + pos]
    q_len, k_len = resid.shape[1], full.shape[1]
    positions = (full.long().cumsum(-1) - 1).clamp(min=0)[:, k_len - q_len:]  # [batch, pos]
    allowed = causal_mask(q_len, k_len, resid.device) & full.to(resid.device).bool()[:, None, None, :]  # [batch, 1, q, k]
    mask = torch.zeros(allowed.shape, dtype=resid.dtype, device=resid.device).masked_fill(~allowed, torch.finfo(resid.dtype).min)
    kwargs: dict[str, Any] = {"attention_mask": mask, "position_ids": positions.to(resid.device), "use_cache": cache is not None}
    if cache is not None:
        kwargs[cache_argument(model)] = cache.hf_cache
    rotary = getattr(getattr(model.original_model, "model", None), "rotary_emb", None)
    if rotary is not None:
        kwargs["position_embeddings"] = rotary(resid, position_ids=kwargs["position_ids"])
    x = resid
    for block in model.blocks[layer:]:
        out = block(x, **kwargs)
        x = out[0] if isinstance(out, tuple) else out
    return x
