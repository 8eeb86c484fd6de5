"""Train what the model's Hugging Face form has, so a fine-tune is the same on TransformerLens 3 and 4.

A ``HookedTransformer`` holds every bias its architecture allows (``b_Q``, ``b_K``, ``b_V``,
``b_O``, ``b_in``, ``b_out``, ``b_U``), zeros where the checkpoint has none. The same Llama in
Hugging Face form, which a ``TransformerBridge`` wraps on TransformerLens 4, has only the biases
its config switches on (:func:`rhlens.adapter.layout.llama_hf_biases`) and never ``b_in``:
TransformerLens adds ``b_in`` after ``act(gate) * up``, so it is part of ``down_proj.bias``
(``b_out + b_in W_out``). A fine-tune that moved every HookedTransformer bias therefore moved
numbers the Bridge does not have, and the majors' fine-tunes differed (112 of 1,551 numbers of the
smoke study by more than 1e-4).

:func:`match_hf_form` folds ``b_in`` into ``b_out`` (the same function) and names the biases a
fine-tune keeps fixed: ``b_in``; the attention biases when all are zero (no ``attention_bias``);
``b_out`` when the MLP has no nonzero bias (no ``mlp_bias``); ``b_U`` when it is zero (no
``lm_head.bias``). :func:`rhlens.train` calls it on every model: a Bridge's parameters are its
Hugging Face form already, except the zero ``lm_head`` bias TransformerLens 3.9's bridge adds and an
attention-only bridge's width-0 MLPs with their norms (a HookedTransformer with ``attn_only`` has neither).

>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_layers=1)
>>> frozen = match_hf_form(model)
>>> model_kind(model) == "bridge" or {"blocks.0.mlp.b_in", "blocks.0.attn.b_Q", "unembed.b_U"} <= frozen
True
"""

import torch

from rhlens.adapter.core import Model, model_kind
from rhlens.adapter.layout import hf_family, llama_bias_keys, llama_hf_biases, nonzero


@torch.no_grad()
def match_hf_form(model: Model) -> set[str]:
    """Fold ``b_in`` into ``b_out`` in place and return the parameter names (``named_parameters``)
    that have no Hugging Face counterpart; an empty set for a non-Llama HookedTransformer."""
    if model_kind(model) != "hooked":
        # TransformerLens 3.9's bridge gives lm_head a bias that Hugging Face's Llama has not; an attention-only
        # bridge's MLPs of width 0 and their norms compute nothing (rhlens.adapter.native) and have no counterpart
        dead = (".post_attention_layernorm.", ".mlp.") if getattr(model.cfg, "attn_only", False) else ()
        return {n for n, p in model.named_parameters()
                if (n.startswith("lm_head.") and n.endswith(".bias") and not nonzero(p)) or any(d in n for d in dead)}
    if hf_family(model.cfg) != "llama" or not model.cfg.gated_mlp:  # b_in folds only after a gated MLP's product
        return set()
    params = dict(model.named_parameters())
    attn_bias, mlp_bias = llama_hf_biases(params, model.cfg)
    attn_keys, mlp_keys = llama_bias_keys(model.cfg)
    for layer in range(model.cfg.n_layers):
        b_in, b_out, w_out = (params.get(f"blocks.{layer}.mlp.{n}") for n in ("b_in", "b_out", "W_out"))
        if b_in is not None and b_out is not None and w_out is not None and nonzero(b_in):
            b_out.add_((b_in.double() @ w_out.double()).to(b_out.dtype))
            b_in.zero_()
    frozen = {k for k in mlp_keys if k.endswith(".b_in")}
    if not attn_bias:
        frozen.update(attn_keys)
    if not mlp_bias:
        frozen.update(mlp_keys)
    if "unembed.b_U" in params and not nonzero(params["unembed.b_U"]):
        frozen.add("unembed.b_U")
    return frozen & set(params)
