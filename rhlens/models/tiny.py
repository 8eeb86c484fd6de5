"""Tiny models built from a config: the embedded default's world.

``tiny_llama`` is Llama-shaped (rotary positions, RMSNorm, gated SiLU MLP, optional grouped-query
attention); ``tiny_gpt2`` is GPT-2-shaped (learned positions, LayerNorm, GELU). Both carry a
word-level tokenizer (by default the one over every word rhlens's task generators write).
"""

from typing import Any

from rhlens.adapter.core import Model
from rhlens.adapter.native import new_model
from rhlens.models.tokenizer import default_tokenizer

# the size both shapes share by default: 2 layers of 4 heads of 16, 512 positions
_TINY_SIZE: dict[str, Any] = dict(n_layers=2, d_model=64, n_heads=4, d_head=16, n_ctx=512)

TINY_LLAMA_DEFAULTS: dict[str, Any] = dict(
    **_TINY_SIZE,
    d_mlp=172,
    act_fn="silu",
    normalization_type="RMS",
    positional_embedding_type="rotary",
    rotary_base=10000,
    gated_mlp=True,
    final_rms=True,
    original_architecture="LlamaForCausalLM",
)

TINY_GPT2_DEFAULTS: dict[str, Any] = dict(
    **_TINY_SIZE,
    d_mlp=256,
    act_fn="gelu_new",
    normalization_type="LN",
    positional_embedding_type="standard",
    original_architecture="GPT2LMHeadModel",
)


def _build(defaults: dict[str, Any], tokenizer: Any, seed: int | None, overrides: dict[str, Any]) -> Model:
    tok = tokenizer if tokenizer is not None else default_tokenizer()
    cfg_dict = {**defaults, **overrides}
    if "d_head" not in overrides and "d_model" in overrides:
        cfg_dict["d_head"] = cfg_dict["d_model"] // cfg_dict["n_heads"]
    if cfg_dict.get("positional_embedding_type") == "rotary":
        cfg_dict.setdefault("rotary_dim", cfg_dict["d_head"])
    vocab_size = len(tok)
    if cfg_dict.setdefault("d_vocab", vocab_size) < vocab_size:
        raise ValueError(
            f"d_vocab={cfg_dict['d_vocab']} is smaller than the tokenizer's {vocab_size} tokens; "
            "leave d_vocab unset to size the model from the tokenizer"
        )
    if seed is not None:
        cfg_dict["seed"] = seed
    n_kv = cfg_dict.get("n_key_value_heads")
    if n_kv is not None and cfg_dict["n_heads"] % n_kv:
        raise ValueError(f"n_heads={cfg_dict['n_heads']} must be a multiple of n_key_value_heads={n_kv}")
    return new_model(cfg_dict, tokenizer=tok, padding_side="left")


def tiny_llama(*, tokenizer: Any = None, seed: int | None = 0, **overrides: Any) -> Model:
    """A small Llama-shaped model with random weights: a ``HookedTransformer`` on TransformerLens 3,
    a ``TransformerBridge`` over a Hugging Face ``LlamaForCausalLM`` on TransformerLens 4.

    Args:
        tokenizer: a Hugging Face fast tokenizer; default :func:`rhlens.models.default_tokenizer`.
        seed: initialisation seed (``None`` leaves torch's global RNG in charge).
        **overrides: any ``HookedTransformerConfig`` field (on TransformerLens 4, those a Hugging Face
            Llama can express), e.g. ``n_layers=4``,
            ``n_key_value_heads=2`` for grouped-query attention, ``n_ctx=1024``.

    >>> model = tiny_llama(n_layers=2, n_heads=4, n_key_value_heads=2, seed=0)
    >>> model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_key_value_heads
    (2, 4, 2)
    >>> tokens = model.to_tokens("The sky is blue.")
    >>> tokens.shape, model(tokens).shape[-1] == len(model.tokenizer)   # logits [batch, pos, d_vocab]
    (torch.Size([1, 6]), True)
    """
    return _build(TINY_LLAMA_DEFAULTS, tokenizer, seed, overrides)


def tiny_gpt2(*, tokenizer: Any = None, seed: int | None = 0, **overrides: Any) -> Model:
    """A small GPT-2-shaped model with random weights (see :func:`tiny_llama`; a bridge over a
    ``GPT2LMHeadModel`` on TransformerLens 4).

    >>> model = tiny_gpt2(n_layers=1, seed=0)
    >>> model.cfg.positional_embedding_type, model.cfg.normalization_type, model.cfg.n_layers
    ('standard', 'LN', 1)
    """
    return _build(TINY_GPT2_DEFAULTS, tokenizer, seed, overrides)
