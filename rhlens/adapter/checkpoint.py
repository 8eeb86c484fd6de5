"""A loaded Hugging Face checkpoint as the installed TransformerLens's model class (the last step
of :func:`rhlens.load_hf_checkpoint`), with the same config and weight processing on both majors.

:func:`rhlens.load_hf_checkpoint` maps the folder's ``config.json`` to ``HookedTransformerConfig``
fields (refusing what it cannot map) and fills the Hugging Face model; :func:`native_from_hf` then
makes what this TransformerLens has:

- 3.x: a ``HookedTransformer`` built from the fields, its weights converted by TransformerLens's
  own converter (``convert_llama_weights`` ...) and processed by ``load_and_process_state_dict``;
- 4.x: a ``TransformerBridge`` booted on the Hugging Face model itself. The bridge's config is
  completed from the fields (TransformerLens 4.3 leaves ``rotary_dim`` unset, reads ``rotary_base``
  10000 whatever ``rope_theta``, and knows no sliding window), the ``n_ctx`` / ``rotary_base``
  overrides change the Hugging Face model too (:func:`rhlens.adapter.rotary.set_context`), and the
  weights are processed by the bridge's own ``process_weights``. A bridge takes only the overrides
  in :data:`BRIDGE_OVERRIDES`; :func:`override_problem` names the others.

Both majors: value biases are never folded and attention matrices never refactored, so
``hook_q/k/v/z`` and the patterns equal the Hugging Face model's; ``fold_ln`` marks the norms
folded (``normalization_type`` ``"RMSPre"`` / ``"LNPre"``); the processing asked for is recorded
(:func:`rhlens.adapter.record_weight_processing`). Folding and centring keep the log-probabilities
(measured within 3e-7 in float32 on tiny Llama, Qwen2 and GPT-2 checkpoints); centring the
unembedding shifts each position's logits by a constant.

>>> sorted(BRIDGE_OVERRIDES)
['default_prepend_bos', 'n_ctx', 'rotary_base']
"""

import warnings
from typing import Any, Iterable

import torch

from rhlens.adapter.convert import add_llama_attention_biases, hf_weight_converter
from rhlens.adapter.core import (CONFIG_ATTR, NATIVE_KIND, HookedTransformer, HookedTransformerConfig, Model,
                                 record_weight_processing)
from rhlens.adapter.native import boot_bridge, config_field_names
from rhlens.adapter.rotary import set_context

__all__ = ["BRIDGE_OVERRIDES", "native_from_hf", "override_problem"]

#: The ``HookedTransformerConfig`` fields a bridge (TransformerLens 4) can take as load-time overrides.
BRIDGE_OVERRIDES = frozenset({"n_ctx", "rotary_base", "default_prepend_bos"})
# Mapped fields the booted bridge keeps as it set them (its own name, dtype, device and init state).
_BOOT_OWNED = frozenset({"model_name", "dtype", "device", "init_weights", "tokenizer_name"})


def override_problem(names: Iterable[str]) -> str | None:
    """Why the config overrides ``names`` cannot be applied to a loaded checkpoint here, or ``None``.

    >>> override_problem(["n_ctx"]) is None
    True
    >>> "n_ctxx" in override_problem(["n_ctxx"])
    True
    """
    valid = config_field_names()
    if valid is not None:
        unknown = sorted(set(names) - valid)
        if unknown:
            return (f"unknown HookedTransformerConfig field(s) in the overrides: {unknown}; valid fields include "
                    "n_ctx, rotary_base, default_prepend_bos, use_attn_result (see HookedTransformerConfig)")
        return None
    refused = sorted(set(names) - BRIDGE_OVERRIDES)
    if refused:
        return (f"config override(s) {refused} cannot be applied here: TransformerLens 4 loads the checkpoint as a "
                f"TransformerBridge, which takes {', '.join(sorted(BRIDGE_OVERRIDES))}; leave the others out, or install "
                "transformer-lens<4 for HookedTransformer loading")
    return None


def native_from_hf(
    hf: Any,
    fields: dict[str, Any],
    *,
    tokenizer: Any,
    name: str,
    overrides: dict[str, Any],
    device: str | torch.device = "cpu",
    fold_ln: bool = False,
    center_writing_weights: bool = False,
    center_unembed: bool = False,
) -> Model:
    """``hf`` (a Hugging Face ``*ForCausalLM``, eager attention) as this TransformerLens's model, in eval mode on ``device``.

    Args:
        hf: the checkpoint's Hugging Face model with its weights (consumed: on 4.x the bridge wraps it).
        fields: its ``HookedTransformerConfig`` fields (overrides applied), ``original_architecture`` set.
        tokenizer: the checkpoint's tokenizer (left padding).
        name: a name for the bridge (the folder's path).
        overrides: the overrides the caller gave (a subset of ``fields``).
        fold_ln, center_writing_weights, center_unembed: TransformerLens weight processing; recorded.
    """
    processing = dict(fold_ln=fold_ln, center_writing_weights=center_writing_weights, center_unembed=center_unembed)
    if NATIVE_KIND == "hooked":
        model = _hooked(hf, fields, tokenizer, processing)
        model.to(device, print_details=False)
    else:
        model = _bridge(hf.to(device), fields, tokenizer, name, overrides, processing)
    model.eval()
    record_weight_processing(model, **processing)
    return model


def _hooked(hf: Any, fields: dict[str, Any], tokenizer: Any, processing: dict[str, bool]) -> Any:
    cfg = HookedTransformerConfig(**fields)
    arch = fields["original_architecture"]
    with torch.no_grad():
        state = hf_weight_converter(arch)(hf, cfg)
        if arch == "LlamaForCausalLM":  # the converter writes zero attention biases; copy the real ones
            add_llama_attention_biases(hf, cfg, state)
        state = {k: v.detach().clone() for k, v in state.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        model = HookedTransformer(cfg, tokenizer=tokenizer, default_padding_side="left", move_to_device=False)
    with torch.no_grad():
        model.load_and_process_state_dict(state, fold_value_biases=False, refactor_factored_attn_matrices=False, **processing)
    return model


def _bridge(hf: Any, fields: dict[str, Any], tokenizer: Any, name: str, overrides: dict[str, Any],
            processing: dict[str, bool]) -> Any:
    bridge = boot_bridge(hf, tokenizer, model_name=name)
    if "n_ctx" in overrides or "rotary_base" in overrides:  # the Hugging Face model's positions change too
        set_context(bridge, int(fields["n_ctx"]), rotary_base=overrides.get("rotary_base"))
    for key, value in fields.items():
        if key not in _BOOT_OWNED:
            setattr(bridge.cfg, key, value)
    if not any(processing.values()):
        # the unprocessed weights are the config's: the bridge saves (save_model) and converts like one rhlens built
        object.__setattr__(bridge, CONFIG_ATTR, dict(fields))
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bridge.process_weights(fold_value_biases=False, refactor_factored_attn_matrices=False, **processing)
        norm = bridge.cfg.normalization_type
        if processing["fold_ln"] and norm in ("LN", "RMS"):
            bridge.cfg.normalization_type = f"{norm}Pre"  # as HookedTransformer marks folded norms
    return bridge
