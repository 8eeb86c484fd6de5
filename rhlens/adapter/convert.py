"""Hugging Face <-> TransformerLens weight layouts: the state-dict keys of both sides.

- :func:`hf_weight_converter`: TransformerLens's own converter for a supported Hugging Face class.
- :func:`add_llama_attention_biases`: the real q/k/v/o biases ``convert_llama_weights`` leaves at zero.
- the other direction (TransformerLens-keyed weights as a Hugging Face model's) is
  :mod:`rhlens.adapter.layout`.
- :func:`supported_activations`: the ``act_fn`` names TransformerLens implements.

>>> "silu" in supported_activations()
True
"""

from typing import Any, Callable

from torch import Tensor

__all__ = ["add_llama_attention_biases", "hf_weight_converter", "supported_activations"]


def supported_activations() -> frozenset[str]:
    """The activation names (``cfg.act_fn``) TransformerLens implements."""
    from transformer_lens.utilities.activation_functions import SUPPORTED_ACTIVATIONS

    return frozenset(SUPPORTED_ACTIVATIONS)


def hf_weight_converter(arch: str) -> Callable[[Any, Any], dict[str, Tensor]]:
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


def add_llama_attention_biases(hf: Any, cfg: Any, sd: dict[str, Tensor]) -> None:
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
