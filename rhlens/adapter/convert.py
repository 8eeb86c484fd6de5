"""Hugging Face <-> TransformerLens weight layouts: the state-dict keys of both sides.

- :func:`hf_weight_converter`: TransformerLens's own converter for a supported Hugging Face class.
- :func:`add_llama_attention_biases`: the real q/k/v/o biases ``convert_llama_weights`` leaves at zero.
- :func:`hf_llama_state_dict`: a Llama-shaped ``HookedTransformer``'s weights keyed as
  ``LlamaForCausalLM`` expects them (for :func:`rhlens.as_bridge`).
- :func:`supported_activations`: the ``act_fn`` names TransformerLens implements.

>>> "silu" in supported_activations()
True
"""

from typing import Any, Callable

import einops
import torch
from torch import Tensor

from rhlens.adapter.core import HookedTransformerConfig

__all__ = ["add_llama_attention_biases", "hf_llama_state_dict", "hf_weight_converter", "supported_activations"]


def supported_activations() -> frozenset[str]:
    """The activation names (``cfg.act_fn``) TransformerLens implements."""
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    return frozenset(SUPPORTED_ACTIVATIONS)


def hf_weight_converter(arch: str) -> Callable[[Any, HookedTransformerConfig], dict[str, Tensor]]:
    """TransformerLens's ``convert_*_weights`` for Hugging Face class ``arch`` (e.g. ``"LlamaForCausalLM"``)."""
    from transformer_lens.pretrained.weight_conversions import (
        convert_gpt2_weights,
        convert_llama_weights,
        convert_mistral_weights,
        convert_qwen2_weights,
    )

    converters = {
        "LlamaForCausalLM": convert_llama_weights,
        "MistralForCausalLM": convert_mistral_weights,
        "Qwen2ForCausalLM": convert_qwen2_weights,
        "GPT2LMHeadModel": convert_gpt2_weights,
    }
    if arch not in converters:
        raise ValueError(f"no TransformerLens weight converter for {arch!r}; supported: {', '.join(converters)}")
    return converters[arch]


def add_llama_attention_biases(hf: Any, cfg: HookedTransformerConfig, sd: dict[str, Tensor]) -> None:
    """``convert_llama_weights`` writes zero attention biases; copy the real ones into ``sd`` (in place)."""
    kv = "_" if cfg.n_key_value_heads is not None else ""
    n_kv = cfg.n_key_value_heads or cfg.n_heads
    for l, layer in enumerate(hf.model.layers):
        att = layer.self_attn
        for proj, name, n in (("q_proj", "b_Q", cfg.n_heads), ("k_proj", f"{kv}b_K", n_kv), ("v_proj", f"{kv}b_V", n_kv)):
            bias = getattr(att, proj).bias
            if bias is not None:
                sd[f"blocks.{l}.attn.{name}"] = bias.reshape(n, cfg.d_head)
        if att.o_proj.bias is not None:
            sd[f"blocks.{l}.attn.b_O"] = att.o_proj.bias


def _nonzero(t: Tensor | None) -> bool:
    return t is not None and bool(t.detach().abs().max() > 0)


def hf_llama_state_dict(sd: dict[str, Tensor], cfg: HookedTransformerConfig) -> tuple[dict[str, Tensor], bool, bool]:
    """``(state, attention_bias, mlp_bias)``: a Llama-shaped HookedTransformer state dict ``sd`` keyed
    and laid out as ``LlamaForCausalLM``'s, and whether it needs attention / MLP biases.

    ``W_Q [head, d_model, d_head] -> q_proj.weight [(head d_head), d_model]`` (K/V per key/value
    head under grouped-query attention); ``W_O [head, d_head, d_model] -> o_proj.weight [d_model,
    (head d_head)]``; ``W_in/W_gate/W_out`` transposed into ``up/gate/down_proj``; missing norm
    weights (folded ``RMSPre``) become ones. Raises ``ValueError`` for a nonzero unembedding bias,
    which ``LlamaForCausalLM`` cannot hold. Tensors are copies in the embedding's dtype.
    """
    n_layers = cfg.n_layers
    kv = "_" if cfg.n_key_value_heads is not None else ""
    if _nonzero(sd.get("unembed.b_U")):
        raise ValueError("unembed.b_U is nonzero: LlamaForCausalLM's lm_head has no bias, so as_bridge cannot convert this model")
    attn_bias = any(
        _nonzero(sd.get(f"blocks.{l}.attn.{name}")) for l in range(n_layers) for name in ("b_Q", f"{kv}b_K", f"{kv}b_V", "b_O")
    )
    mlp_bias = any(_nonzero(sd.get(f"blocks.{l}.mlp.{name}")) for l in range(n_layers) for name in ("b_in", "b_out"))
    dtype = sd["embed.W_E"].dtype

    def c(t: Tensor) -> Tensor:
        return t.detach().to(dtype).clone().contiguous()

    def norm_w(key: str) -> Tensor:
        return c(sd[key]) if key in sd else torch.ones(cfg.d_model, dtype=dtype)

    def heads_in(key: str) -> Tensor:
        return c(einops.rearrange(sd[key], "n m h -> (n h) m"))

    out: dict[str, Tensor] = {"model.embed_tokens.weight": c(sd["embed.W_E"])}
    for l in range(n_layers):
        p, b = f"model.layers.{l}.", f"blocks.{l}."
        out[p + "input_layernorm.weight"] = norm_w(b + "ln1.w")
        out[p + "post_attention_layernorm.weight"] = norm_w(b + "ln2.w")
        out[p + "self_attn.q_proj.weight"] = heads_in(b + "attn.W_Q")
        out[p + "self_attn.k_proj.weight"] = heads_in(b + f"attn.{kv}W_K")
        out[p + "self_attn.v_proj.weight"] = heads_in(b + f"attn.{kv}W_V")
        out[p + "self_attn.o_proj.weight"] = c(einops.rearrange(sd[b + "attn.W_O"], "n h m -> m (n h)"))
        if attn_bias:
            out[p + "self_attn.q_proj.bias"] = c(sd[b + "attn.b_Q"].flatten())
            out[p + "self_attn.k_proj.bias"] = c(sd[b + f"attn.{kv}b_K"].flatten())
            out[p + "self_attn.v_proj.bias"] = c(sd[b + f"attn.{kv}b_V"].flatten())
            out[p + "self_attn.o_proj.bias"] = c(sd[b + "attn.b_O"])
        out[p + "mlp.up_proj.weight"] = c(sd[b + "mlp.W_in"].T)
        out[p + "mlp.gate_proj.weight"] = c(sd[b + "mlp.W_gate"].T)
        out[p + "mlp.down_proj.weight"] = c(sd[b + "mlp.W_out"].T)
        if mlp_bias:
            out[p + "mlp.up_proj.bias"] = c(sd[b + "mlp.b_in"])
            out[p + "mlp.gate_proj.bias"] = torch.zeros(cfg.d_mlp, dtype=dtype)
            out[p + "mlp.down_proj.bias"] = c(sd[b + "mlp.b_out"])
    out["model.norm.weight"] = norm_w("ln_final.w")
    out["lm_head.weight"] = c(sd["unembed.W_U"].T)
    return out, attn_bias, mlp_bias
