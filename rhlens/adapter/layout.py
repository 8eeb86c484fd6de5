"""TransformerLens-keyed weights <-> Hugging Face ``LlamaForCausalLM`` / ``GPT2LMHeadModel`` weights.

rhlens saves its own models with TransformerLens (``HookedTransformer``) state-dict keys
(``blocks.{L}.attn.W_Q [head, d_model, d_head]`` ...), on either TransformerLens major. On
TransformerLens 4 the same weights live in a Hugging Face model under a ``TransformerBridge``; these
maps convert both ways, exactly (a permutation of the same numbers, plus one exact linear fold):

- ``mlp.b_in`` is added *after* ``act(x W_gate) * (x W_in)`` in TransformerLens's gated MLP, so it
  is not ``up_proj.bias`` (added inside the product): it folds into ``down_proj.bias = b_out +
  b_in W_out`` (the same function). The reverse map gives ``b_in = 0`` and that ``b_out``.
- ``unembed.b_U`` becomes ``lm_head.bias`` (rhlens gives the Hugging Face model a biased
  ``lm_head`` when it is nonzero; :func:`rhlens.adapter.native.hf_model_from_config`).
- Hugging Face ``gate_proj``/``up_proj`` biases have no TransformerLens counterpart: a nonzero one
  is refused, naming the tensor.

>>> import torch
>>> from types import SimpleNamespace
>>> cfg = SimpleNamespace(n_layers=0, d_model=2, d_mlp=4, n_heads=1, d_head=2, n_key_value_heads=None)
>>> hf = llama_to_hf({"embed.W_E": torch.ones(3, 2), "unembed.W_U": torch.ones(2, 3), "unembed.b_U": torch.arange(3.0)}, cfg)
>>> sorted(hf), hf["lm_head.bias"].tolist()
(['lm_head.bias', 'lm_head.weight', 'model.embed_tokens.weight', 'model.norm.weight'], [0.0, 1.0, 2.0])
"""

from typing import Any, Mapping

import einops
import torch
from torch import Tensor

__all__ = ["gpt2_bridge_join", "gpt2_bridge_split", "gpt2_from_hf", "gpt2_to_hf", "hf_family", "llama_bias_keys",
           "llama_from_hf", "llama_hf_biases", "llama_to_hf", "nonzero"]


def hf_family(cfg: Any) -> str:
    """The Hugging Face family of a TransformerLens config (a ``HookedTransformerConfig`` or a dict of
    its fields): ``"llama"`` for rotary positions, ``"gpt2"`` otherwise. What else the family needs
    (a gated MLP, RMSNorm; LayerNorm ...) :func:`rhlens.adapter.native.hf_shape_problems` checks.

    >>> hf_family({"positional_embedding_type": "rotary"}), hf_family({"positional_embedding_type": "standard"})
    ('llama', 'gpt2')
    """
    positions = cfg.get("positional_embedding_type") if isinstance(cfg, Mapping) else getattr(cfg, "positional_embedding_type", None)
    return "llama" if positions == "rotary" else "gpt2"


def nonzero(t: Tensor | None) -> bool:
    """Whether ``t`` exists and has an entry that is not 0."""
    return t is not None and t.numel() > 0 and bool(t.detach().abs().max() > 0)


def _copy(t: Tensor, dtype: torch.dtype) -> Tensor:
    return t.detach().to(dtype).clone().contiguous()


def llama_bias_keys(cfg: Any) -> tuple[list[str], list[str]]:
    """The TransformerLens keys of a Llama-shaped model's attention biases and MLP biases."""
    kv = "_" if cfg.n_key_value_heads is not None else ""
    attn = [f"blocks.{l}.attn.{n}" for l in range(cfg.n_layers) for n in ("b_Q", f"{kv}b_K", f"{kv}b_V", "b_O")]
    return attn, [f"blocks.{l}.mlp.{n}" for l in range(cfg.n_layers) for n in ("b_in", "b_out")]


def llama_hf_biases(sd: Mapping[str, Tensor], cfg: Any) -> tuple[bool, bool]:
    """``(attention_bias, mlp_bias)`` of the Hugging Face form: whether any bias of that kind is nonzero
    (``sd`` may be a model's ``named_parameters()`` as a dict: nothing is written or kept)."""
    attn, mlp = llama_bias_keys(cfg)
    return any(nonzero(sd.get(k)) for k in attn), any(nonzero(sd.get(k)) for k in mlp)


def llama_to_hf(sd: dict[str, Tensor], cfg: Any) -> dict[str, Tensor]:
    """A Llama-shaped TransformerLens state dict keyed and laid out as ``LlamaForCausalLM``'s.

    ``W_Q [head, d_model, d_head] -> q_proj.weight [(head d_head), d_model]`` (K/V per key/value
    head); ``W_O [head, d_head, d_model] -> o_proj.weight [d_model, (head d_head)]``;
    ``W_in/W_gate/W_out`` transposed into ``up/gate/down_proj``; attention biases become
    ``q/k/v/o_proj.bias``; ``b_in`` folds into ``down_proj.bias``; ``b_U`` becomes ``lm_head.bias``.
    Bias keys appear only when some bias of that kind is nonzero (``attention_bias``/``mlp_bias``
    of the Hugging Face config). Missing norm weights (folded ``RMSPre``) become ones. An
    attention-only config (``attn_only``) gets MLPs of width 0 (``intermediate_size=0``), which add
    exactly 0 to the residual stream, so the model computes what the HookedTransformer computes.
    """
    kv = "_" if cfg.n_key_value_heads is not None else ""
    dtype = sd["embed.W_E"].dtype
    attn_bias, mlp_bias = llama_hf_biases(sd, cfg)

    def norm_w(key: str) -> Tensor:
        return _copy(sd[key], dtype) if key in sd else torch.ones(cfg.d_model, dtype=dtype)

    def zeros_like_key(key: str, shape: tuple[int, ...]) -> Tensor:
        return sd[key] if key in sd else torch.zeros(shape, dtype=dtype)

    out: dict[str, Tensor] = {"model.embed_tokens.weight": _copy(sd["embed.W_E"], dtype)}
    for l in range(cfg.n_layers):
        p, b = f"model.layers.{l}.", f"blocks.{l}."
        out[p + "input_layernorm.weight"] = norm_w(b + "ln1.w")
        out[p + "post_attention_layernorm.weight"] = norm_w(b + "ln2.w")
        for letter, key in (("q", "W_Q"), ("k", f"{kv}W_K"), ("v", f"{kv}W_V")):
            out[p + f"self_attn.{letter}_proj.weight"] = _copy(einops.rearrange(sd[b + "attn." + key], "n m h -> (n h) m"), dtype)
        out[p + "self_attn.o_proj.weight"] = _copy(einops.rearrange(sd[b + "attn.W_O"], "n h m -> m (n h)"), dtype)
        if attn_bias:
            n_kv = cfg.n_key_value_heads or cfg.n_heads
            for letter, key, n in (("q", "b_Q", cfg.n_heads), ("k", f"{kv}b_K", n_kv), ("v", f"{kv}b_V", n_kv)):
                out[p + f"self_attn.{letter}_proj.bias"] = _copy(zeros_like_key(b + "attn." + key, (n, cfg.d_head)).flatten(), dtype)
            out[p + "self_attn.o_proj.bias"] = _copy(zeros_like_key(b + "attn.b_O", (cfg.d_model,)), dtype)
        if getattr(cfg, "attn_only", False):  # an MLP of width 0 adds exactly 0; its norm's output is unused
            out.update({p + f"mlp.{n}_proj.weight": torch.zeros(shape, dtype=dtype) for n, shape in
                        (("up", (0, cfg.d_model)), ("gate", (0, cfg.d_model)), ("down", (cfg.d_model, 0)))})
            continue
        out[p + "mlp.up_proj.weight"] = _copy(sd[b + "mlp.W_in"].T, dtype)
        out[p + "mlp.gate_proj.weight"] = _copy(sd[b + "mlp.W_gate"].T, dtype)
        out[p + "mlp.down_proj.weight"] = _copy(sd[b + "mlp.W_out"].T, dtype)
        if mlp_bias:
            b_in = zeros_like_key(b + "mlp.b_in", (cfg.d_mlp,)).to(torch.float64)
            b_out = zeros_like_key(b + "mlp.b_out", (cfg.d_model,)).to(torch.float64)
            out[p + "mlp.down_proj.bias"] = _copy(b_out + b_in @ sd[b + "mlp.W_out"].to(torch.float64), dtype)
            out[p + "mlp.up_proj.bias"] = torch.zeros(cfg.d_mlp, dtype=dtype)
            out[p + "mlp.gate_proj.bias"] = torch.zeros(cfg.d_mlp, dtype=dtype)
    out["model.norm.weight"] = norm_w("ln_final.w")
    out["lm_head.weight"] = _copy(sd["unembed.W_U"].T, dtype)
    if nonzero(sd.get("unembed.b_U")):
        out["lm_head.bias"] = _copy(sd["unembed.b_U"], dtype)
    return out


def _refuse_nonzero(hf: dict[str, Tensor], keys: list[str], why: str) -> None:
    bad = [k for k in keys if nonzero(hf.get(k))]
    if bad:
        raise ValueError(f"{bad[0]} is nonzero: {why}, so this model cannot be converted exactly")


def llama_from_hf(hf: dict[str, Tensor], cfg: Any) -> dict[str, Tensor]:
    """The inverse of :func:`llama_to_hf`: TransformerLens keys (``b_in = 0``, ``b_U`` from ``lm_head.bias``;
    no ``ln2``/``mlp`` keys when ``cfg.attn_only``)."""
    kv, attn_only = "_" if cfg.n_key_value_heads is not None else "", bool(getattr(cfg, "attn_only", False))
    n_kv = cfg.n_key_value_heads or cfg.n_heads
    dtype = hf["model.embed_tokens.weight"].dtype
    layers = [f"model.layers.{l}.mlp.{n}_proj.bias" for l in range(cfg.n_layers) for n in ("up", "gate")]
    _refuse_nonzero(hf, layers, "TransformerLens's gated MLP has no bias inside act(gate) * up")

    def get(key: str, shape: tuple[int, ...]) -> Tensor:
        return _copy(hf[key], dtype) if key in hf else torch.zeros(shape, dtype=dtype)

    out: dict[str, Tensor] = {"embed.W_E": _copy(hf["model.embed_tokens.weight"], dtype)}
    for l in range(cfg.n_layers):
        p, b = f"model.layers.{l}.", f"blocks.{l}."
        out[b + "ln1.w"] = get(p + "input_layernorm.weight", (cfg.d_model,))
        if not attn_only:
            out[b + "ln2.w"] = get(p + "post_attention_layernorm.weight", (cfg.d_model,))
        for letter, key, n in (("q", "Q", cfg.n_heads), ("k", f"{kv}K", n_kv), ("v", f"{kv}V", n_kv)):
            out[f"{b}attn.W_{key}" if not key.startswith("_") else f"{b}attn._W_{key[1:]}"] = _copy(
                einops.rearrange(hf[p + f"self_attn.{letter}_proj.weight"], "(n h) m -> n m h", n=n), dtype)
            bias_key = f"{b}attn.b_{key}" if not key.startswith("_") else f"{b}attn._b_{key[1:]}"
            out[bias_key] = get(p + f"self_attn.{letter}_proj.bias", (n * cfg.d_head,)).reshape(n, cfg.d_head)
        out[b + "attn.W_O"] = _copy(einops.rearrange(hf[p + "self_attn.o_proj.weight"], "m (n h) -> n h m", n=cfg.n_heads), dtype)
        out[b + "attn.b_O"] = get(p + "self_attn.o_proj.bias", (cfg.d_model,))
        if attn_only:
            continue
        out[b + "mlp.W_in"] = _copy(hf[p + "mlp.up_proj.weight"].T, dtype)
        out[b + "mlp.W_gate"] = _copy(hf[p + "mlp.gate_proj.weight"].T, dtype)
        out[b + "mlp.W_out"] = _copy(hf[p + "mlp.down_proj.weight"].T, dtype)
        out[b + "mlp.b_in"] = torch.zeros(cfg.d_mlp, dtype=dtype)
        out[b + "mlp.b_out"] = get(p + "mlp.down_proj.bias", (cfg.d_model,))
    out["ln_final.w"] = get("model.norm.weight", (cfg.d_model,))
    out["unembed.W_U"] = _copy(hf["lm_head.weight"].T, dtype)
    out["unembed.b_U"] = get("lm_head.bias", (cfg.d_vocab,))
    return out


def gpt2_to_hf(sd: dict[str, Tensor], cfg: Any) -> dict[str, Tensor]:
    """A GPT-2-shaped TransformerLens state dict as ``GPT2LMHeadModel``'s (Conv1D ``[in, out]`` weights)."""
    dtype = sd["embed.W_E"].dtype
    out: dict[str, Tensor] = {"transformer.wte.weight": _copy(sd["embed.W_E"], dtype), "transformer.wpe.weight": _copy(sd["pos_embed.W_pos"], dtype)}
    for l in range(cfg.n_layers):
        p, b = f"transformer.h.{l}.", f"blocks.{l}."
        for hf_ln, tl_ln in (("ln_1", "ln1"), ("ln_2", "ln2")):
            out[p + f"{hf_ln}.weight"], out[p + f"{hf_ln}.bias"] = _copy(sd[b + f"{tl_ln}.w"], dtype), _copy(sd[b + f"{tl_ln}.b"], dtype)
        w = [einops.rearrange(sd[b + f"attn.W_{x}"], "n m h -> m (n h)") for x in "QKV"]
        out[p + "attn.c_attn.weight"] = _copy(torch.cat(w, dim=1), dtype)
        out[p + "attn.c_attn.bias"] = _copy(torch.cat([sd[b + f"attn.b_{x}"].flatten() for x in "QKV"]), dtype)
        out[p + "attn.c_proj.weight"] = _copy(einops.rearrange(sd[b + "attn.W_O"], "n h m -> (n h) m"), dtype)
        out[p + "attn.c_proj.bias"] = _copy(sd[b + "attn.b_O"], dtype)
        out[p + "mlp.c_fc.weight"], out[p + "mlp.c_fc.bias"] = _copy(sd[b + "mlp.W_in"], dtype), _copy(sd[b + "mlp.b_in"], dtype)
        out[p + "mlp.c_proj.weight"], out[p + "mlp.c_proj.bias"] = _copy(sd[b + "mlp.W_out"], dtype), _copy(sd[b + "mlp.b_out"], dtype)
    out["transformer.ln_f.weight"], out["transformer.ln_f.bias"] = _copy(sd["ln_final.w"], dtype), _copy(sd["ln_final.b"], dtype)
    out["lm_head.weight"] = _copy(sd["unembed.W_U"].T, dtype)
    if nonzero(sd.get("unembed.b_U")):
        out["lm_head.bias"] = _copy(sd["unembed.b_U"], dtype)
    return out


def gpt2_from_hf(hf: dict[str, Tensor], cfg: Any) -> dict[str, Tensor]:
    """The inverse of :func:`gpt2_to_hf`."""
    dtype = hf["transformer.wte.weight"].dtype
    n, m = cfg.n_heads, cfg.d_model
    out: dict[str, Tensor] = {"embed.W_E": _copy(hf["transformer.wte.weight"], dtype), "pos_embed.W_pos": _copy(hf["transformer.wpe.weight"], dtype)}
    for l in range(cfg.n_layers):
        p, b = f"transformer.h.{l}.", f"blocks.{l}."
        for hf_ln, tl_ln in (("ln_1", "ln1"), ("ln_2", "ln2")):
            out[b + f"{tl_ln}.w"], out[b + f"{tl_ln}.b"] = _copy(hf[p + f"{hf_ln}.weight"], dtype), _copy(hf[p + f"{hf_ln}.bias"], dtype)
        for i, x in enumerate("QKV"):
            w = hf[p + "attn.c_attn.weight"][:, i * m:(i + 1) * m]
            out[b + f"attn.W_{x}"] = _copy(einops.rearrange(w, "m (n h) -> n m h", n=n), dtype)
            out[b + f"attn.b_{x}"] = _copy(hf[p + "attn.c_attn.bias"][i * m:(i + 1) * m].reshape(n, -1), dtype)
        out[b + "attn.W_O"] = _copy(einops.rearrange(hf[p + "attn.c_proj.weight"], "(n h) m -> n h m", n=n), dtype)
        out[b + "attn.b_O"] = _copy(hf[p + "attn.c_proj.bias"], dtype)
        out[b + "mlp.W_in"], out[b + "mlp.b_in"] = _copy(hf[p + "mlp.c_fc.weight"], dtype), _copy(hf[p + "mlp.c_fc.bias"], dtype)
        out[b + "mlp.W_out"], out[b + "mlp.b_out"] = _copy(hf[p + "mlp.c_proj.weight"], dtype), _copy(hf[p + "mlp.c_proj.bias"], dtype)
    out["ln_final.w"], out["ln_final.b"] = _copy(hf["transformer.ln_f.weight"], dtype), _copy(hf["transformer.ln_f.bias"], dtype)
    out["unembed.W_U"] = _copy(hf["lm_head.weight"].T, dtype)
    out["unembed.b_U"] = _copy(hf["lm_head.bias"], dtype) if "lm_head.bias" in hf else torch.zeros(cfg.d_vocab, dtype=dtype)
    return out


# A TransformerBridge on a GPT2LMHeadModel splits each layer's fused ``attn.c_attn`` Conv1D ``[d_model,
# 3 d_model]`` into ``nn.Linear`` modules ``attn.q``/``attn.k``/``attn.v`` (weights ``[out, in]``) and runs
# those; their weights start as views of ``c_attn`` but are what counts (a merged LoRA replaces them).
# It also lists ``c_attn`` as ``attn.qkv`` and ``c_proj`` as ``attn.o``.
_QKV = ("q", "k", "v")


def gpt2_bridge_join(hf: dict[str, Tensor]) -> dict[str, Tensor]:
    """A bridge's Hugging Face GPT-2 weights with each ``attn.c_attn`` rebuilt from ``attn.q/k/v``."""
    out = dict(hf)
    for key in [k for k in hf if k.endswith(".attn.q.weight")]:
        p = key.removesuffix("q.weight")
        out[p + "c_attn.weight"] = torch.cat([hf[f"{p}{x}.weight"].T for x in _QKV], dim=1)
        if f"{p}q.bias" in hf:
            out[p + "c_attn.bias"] = torch.cat([hf[f"{p}{x}.bias"] for x in _QKV])
    return out


def gpt2_bridge_split(hf: dict[str, Tensor]) -> dict[str, Tensor]:
    """``hf`` (``GPT2LMHeadModel`` keys) under the names a bridge's GPT-2 lists its parameters by."""
    out = {k: v for k, v in hf.items() if ".attn.c_attn." not in k and ".attn.c_proj." not in k}
    for key, value in hf.items():
        p, sep, rest = key.rpartition(".attn.c_attn.")
        if sep:
            out[f"{p}.attn.qkv.{rest}"] = value
            for x, part in zip(_QKV, value.chunk(3, dim=-1)):
                out[f"{p}.attn.{x}.{rest}"] = part.T if rest == "weight" else part
        p, sep, rest = key.rpartition(".attn.c_proj.")
        if sep:
            out[f"{p}.attn.o.{rest}"] = value
    return out
