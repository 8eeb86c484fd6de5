"""Rotary tables and context length: what :func:`rhlens.extend_context` changes inside a model.

A HookedTransformer keeps, in every attention layer, two buffers ``rotary_sin`` and ``rotary_cos``
``[rows, rotary_dim]`` computed from ``cfg.rotary_base`` (theta); ``rows`` starts at
``min(n_ctx, 2048)`` and grows lazily up to ``cfg.n_ctx``. The causal mask is built at forward time
(older releases kept an ``[n_ctx, n_ctx]`` ``mask`` buffer; it is resized here when present).

A TransformerBridge's Hugging Face model has no table: its ``rotary_emb`` keeps the frequencies
``inv_freq [rotary_dim / 2]`` (from the config's ``rope_theta``) and rotates each position as it
comes. There the base and ``max_position_embeddings`` are set in the Hugging Face config and the
frequencies recomputed from it, as Hugging Face computes them at load.

>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_ctx=64)
>>> set_context(model, 128, rotary_base=40_000)
>>> model.cfg.n_ctx, model.cfg.rotary_base, rotary_rows(model)
(128, 40000, 128)
"""

import torch

from typing import Any

from rhlens.adapter.core import HookedTransformer, Model, UnsupportedModelError, model_kind
from rhlens.adapter.native import CONFIG_ATTR

# TransformerLens's initial rotary cache size (AbstractAttention.ROTARY_INITIAL_CACHE_SIZE).
_INITIAL_ROWS = 2048


def _check_model(model) -> None:
    if model_kind(model) != "hooked":
        raise UnsupportedModelError(
            "Rotary tables are HookedTransformer buffers; a TransformerBridge's Hugging Face model has none "
            "(it rotates each position as it comes): change its context with set_context / rhlens.extend_context."
        )


def _layer_base(attn, cfg) -> float:
    local_base = getattr(cfg, "rotary_base_local", None)
    if local_base is not None and getattr(attn, "attn_type", "global") == "local":
        return local_base
    return cfg.rotary_base


def rotary_rows(model: Model) -> int:
    """Rows (positions) in layer 0's rotary tables; 0 when the model has no rotary positions.

    A bridge has no table (Hugging Face rotates any position): its ``max_position_embeddings``.
    """
    if model_kind(model) == "bridge":
        rotary = getattr(model.cfg, "positional_embedding_type", None) == "rotary"
        return int(model.original_model.config.max_position_embeddings) if rotary else 0
    attn = model.blocks[0].attn
    table = getattr(attn, "rotary_cos", None)
    return 0 if table is None else int(table.shape[0])


def rebuild_rotary_tables(model: HookedTransformer, rows: int | None = None) -> None:
    """Recompute ``rotary_sin``/``rotary_cos`` in every attention layer from the current config.

    Args:
        rows: table length; default ``min(cfg.n_ctx, max(current rows, 2048))``, so a later
            longer input still extends the table lazily up to ``cfg.n_ctx`` as TransformerLens does.

    The buffers keep their device and the config's dtype; a model without rotary positions is
    left alone.
    """
    _check_model(model)
    cfg = model.cfg
    if cfg.positional_embedding_type != "rotary":
        return
    if rows is None:
        rows = min(int(cfg.n_ctx), max(rotary_rows(model), _INITIAL_ROWS))
    for block in model.blocks:
        attn = block.attn
        device = attn.rotary_cos.device
        sin, cos = attn.calculate_sin_cos_rotary(cfg.rotary_dim, rows, base=_layer_base(attn, cfg), dtype=cfg.dtype)
        attn.rotary_sin = sin.to(device)
        attn.rotary_cos = cos.to(device)


def _set_bridge_context(model: Any, n_ctx: int, rotary_base: float | None) -> None:
    """:func:`set_context` on a bridge: its config, rhlens's record of it, and the Hugging Face rotary frequencies."""
    hf = model.original_model
    changes: dict[str, Any] = {"n_ctx": n_ctx} if rotary_base is None else {"n_ctx": n_ctx, "rotary_base": rotary_base}
    for key, value in changes.items():
        setattr(model.cfg, key, value)
    fields = getattr(model, CONFIG_ATTR, None)
    if fields is not None:  # what save_model writes (rhlens built the bridge)
        fields.update(changes)
    hf.config.max_position_embeddings = n_ctx
    emb = getattr(getattr(hf, "model", None), "rotary_emb", None)
    if emb is None:  # learned positions: only n_ctx changes (shrinking; growing was refused)
        return
    emb = getattr(emb, "original_component", emb)
    if rotary_base is not None:
        params = dict(getattr(hf.config, "rope_parameters", None) or {})
        hf.config.rope_parameters = {**params, "rope_theta": float(rotary_base)}
        emb.config = hf.config
    fresh = type(emb)(config=hf.config)  # frequencies as Hugging Face computes them at load
    for name in ("inv_freq", "original_inv_freq"):
        if hasattr(emb, name):
            setattr(emb, name, getattr(fresh, name).to(emb.inv_freq.device, emb.inv_freq.dtype))
    emb.attention_scaling, emb.max_seq_len_cached, emb.original_max_seq_len = fresh.attention_scaling, n_ctx, n_ctx


def set_context(model: Model, n_ctx: int, *, rotary_base: float | None = None) -> None:
    """Set ``cfg.n_ctx`` (and ``cfg.rotary_base``) and rebuild the position tables in place
    (a bridge's Hugging Face config and rotary frequencies).

    Raises:
        UnsupportedModelError: for learned absolute position embeddings asked to grow (their
            table has ``n_ctx`` trained rows), or dynamic-NTK rotary models (TransformerLens
            rescales their base itself).
        ValueError: for a non-positive ``n_ctx`` or ``rotary_base``.
    """
    bridge = model_kind(model) == "bridge"
    cfg = model.cfg
    if int(n_ctx) <= 0:
        raise ValueError(f"n_ctx must be positive, got {n_ctx}")
    pos_type = cfg.positional_embedding_type
    if pos_type in ("standard", "shortformer") and int(n_ctx) > int(cfg.n_ctx):
        raise UnsupportedModelError(
            f"The model uses learned ({pos_type}) position embeddings with {cfg.n_ctx} trained rows; "
            "its context cannot be extended by changing a config value. Use a rotary model."
        )
    if getattr(cfg, "use_dynamic_ntk_rope", False):
        raise UnsupportedModelError("Dynamic-NTK rotary models rescale their base themselves; extend_context does not apply")
    if rotary_base is not None:
        if pos_type != "rotary":
            raise ValueError(f"rotary_base={rotary_base} given but the model's positions are {pos_type!r}, not rotary")
        if rotary_base <= 0:
            raise ValueError(f"rotary_base must be positive, got {rotary_base}")
    if bridge:
        _set_bridge_context(model, int(n_ctx), rotary_base)
        return
    if rotary_base is not None:
        cfg.rotary_base = rotary_base
    cfg.n_ctx = int(n_ctx)
    if pos_type == "rotary":
        rebuild_rotary_tables(model)
    for block in model.blocks:
        mask = getattr(block.attn, "mask", None)
        # TransformerLens < 3.9 kept a full causal-mask buffer; 3.9 keeps an empty placeholder.
        if isinstance(mask, torch.Tensor) and mask.numel() and mask.shape[-1] < cfg.n_ctx:
            block.attn.mask = torch.tril(torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool, device=mask.device))
