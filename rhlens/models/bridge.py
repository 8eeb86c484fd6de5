"""The same weights as a TransformerLens ``TransformerBridge``, booted offline.

``TransformerBridge`` (TransformerLens 4's model class, shipped in 3.9) wraps a Hugging Face model
and exposes HookedTransformer-style hook names. rhlens uses it to run the same analyses on the
Hugging Face execution path (its attention, its KV cache).

- :func:`as_bridge` converts a Llama-shaped ``HookedTransformer`` (e.g. :func:`rhlens.tiny_llama`,
  or :func:`rhlens.load_hf_checkpoint` of a Llama/Mistral/Qwen2 folder) back to a Hugging Face
  ``LlamaForCausalLM`` built with ``from_config`` (no download) and boots a bridge on it.
- :func:`load_bridge` boots a bridge on a local Hugging Face folder, offline.

Both force ``attn_implementation="eager"`` so that ``hook_pattern`` and ``hook_attn_scores`` fire.

How the bridge's hooks compare with HookedTransformer's (measured on tiny Llama models with 4 query
heads and 4, 2 or 1 key/value heads; values agree to ~1e-6):

- ``blocks.{L}.attn.hook_q``/``hook_rot_q``/``hook_z``: ``[batch, pos, head, d_head]`` in both.
- ``hook_k``/``hook_v``/``hook_rot_k``: ``[batch, pos, kv_head, d_head]`` in both (not repeated
  to query heads under grouped-query attention).
- ``hook_pattern``/``hook_attn_scores``: ``[batch, head, q_pos, k_pos]`` in both. Masked (future or
  padding) scores are ``-inf`` in HookedTransformer but ``torch.finfo(dtype).min`` in the bridge.
- With a KV cache, ``hook_k``/``hook_rot_k`` hold only the new positions, while ``hook_pattern``
  and ``hook_attn_scores`` span cached + new keys (``k_pos = past + pos``).
- The bridge installs internal forward pre-hooks on its RMSNorm wrappers at its first forward; they
  stay, so count hooks relative to a warmed-up bridge.

KV cache: pass a ``transformers.DynamicCache()`` as ``cache=`` (or the deprecated
``past_key_values=``) with ``use_cache=True`` and an ``attention_mask`` spanning cached + new tokens;
chunked prefill then equals the full forward (left padding included). Bridges built here get
:func:`rhlens.adapter.enable_bridge_kv_cache`; without it (a plain ``TransformerBridge.boot_transformers`` under
transformers >= 5.2x) the cache is silently never filled and cached generation is wrong.

Memory: :func:`as_bridge` copies every weight once (the Hugging Face model owns its own tensors;
the HookedTransformer is left untouched), so peak memory is twice the model.

Examples: :func:`as_bridge`, :func:`load_bridge`.
"""

import os
import warnings
from pathlib import Path
from typing import Any

import torch

from rhlens.adapter.cache import enable_bridge_kv_cache
from rhlens.adapter.convert import hf_llama_state_dict
from rhlens.adapter.core import WEIGHT_PROCESSING_ATTR, HookedTransformer, TransformerBridge, record_weight_processing
from rhlens.models.hf_folder import read_hf_config
from rhlens.models.hf_tokenizer import load_local_tokenizer
from rhlens.models.hf_weights import load_hf_model
from rhlens.stopping import attach_generation_eos

__all__ = ["as_bridge", "hf_llama_from_hooked", "load_bridge"]

# HookedTransformer act_fn -> Hugging Face hidden_act (identical functions).
_ACT_TO_HF = {"silu": "silu", "gelu": "gelu", "gelu_new": "gelu_new", "relu": "relu", "gelu_pytorch_tanh": "gelu_pytorch_tanh"}


def _require_bridge() -> None:
    if TransformerBridge is None:  # pragma: no cover - TransformerLens < 3.9
        raise ImportError("TransformerBridge needs transformer-lens>=3.9; upgrade with pip install 'transformer-lens>=3.9,<4'")


def _check_llama_shaped(cfg: Any) -> None:
    """Raise ``ValueError`` naming the config field that a Llama-shaped HF model cannot express."""
    problems = []

    def need(cond: bool, text: str) -> None:
        if not cond:
            problems.append(text)

    need(cfg.positional_embedding_type == "rotary", f"positional_embedding_type={cfg.positional_embedding_type!r} (need 'rotary')")
    need(cfg.normalization_type in ("RMS", "RMSPre"), f"normalization_type={cfg.normalization_type!r} (need 'RMS' or 'RMSPre')")
    need(bool(cfg.gated_mlp), "gated_mlp=False (need a gated MLP)")
    need(not cfg.attn_only, "attn_only=True (need MLPs)")
    need(cfg.act_fn in _ACT_TO_HF, f"act_fn={cfg.act_fn!r} (supported: {', '.join(_ACT_TO_HF)})")
    need(not cfg.rotary_adjacent_pairs, "rotary_adjacent_pairs=True (Llama rotates halves, not adjacent pairs)")
    need(cfg.rotary_dim in (None, cfg.d_head), f"rotary_dim={cfg.rotary_dim} != d_head={cfg.d_head} (partial rotary)")
    need(not cfg.parallel_attn_mlp, "parallel_attn_mlp=True")
    need(not cfg.use_local_attn, "use_local_attn=True (sliding-window layers)")
    need(not getattr(cfg, "use_qk_norm", False), "use_qk_norm=True")
    need(not getattr(cfg, "use_yarn_rope", False), "use_yarn_rope=True")
    need(not getattr(cfg, "use_dynamic_ntk_rope", False), "use_dynamic_ntk_rope=True")
    need(float(getattr(cfg, "rotary_scaling_factor", 1.0)) == 1.0, f"rotary_scaling_factor={cfg.rotary_scaling_factor}")
    need(bool(cfg.use_attn_scale) and abs(float(cfg.attn_scale) - float(cfg.d_head) ** 0.5) < 1e-6,
         f"attn_scale={cfg.attn_scale} (Llama divides scores by sqrt(d_head)={float(cfg.d_head) ** 0.5:g})")
    need(cfg.d_vocab_out == cfg.d_vocab, f"d_vocab_out={cfg.d_vocab_out} != d_vocab={cfg.d_vocab}")
    need(float(getattr(cfg, "output_logits_soft_cap", -1.0)) <= 0 and float(getattr(cfg, "attn_scores_soft_cap", -1.0)) <= 0,
         "soft-capped logits or attention scores")
    need(not getattr(cfg, "post_embedding_ln", False), "post_embedding_ln=True")
    if problems:
        raise ValueError(
            "as_bridge converts Llama-shaped HookedTransformers only (rotary, RMSNorm, gated MLP); "
            f"this model's config has: {'; '.join(problems)}. Build it with rhlens.tiny_llama(...) or load a "
            "Llama/Mistral/Qwen2 folder with rhlens.load_hf_checkpoint(path), or boot the original Hugging Face "
            "folder directly with rhlens.models.load_bridge(path)."
        )


def hf_llama_from_hooked(model: HookedTransformer) -> Any:
    """A Hugging Face ``LlamaForCausalLM`` with exactly ``model``'s weights (eager attention).

    A model whose heads do not tile ``d_model`` (``n_heads * d_head != d_model``, e.g. the embedded
    base: 12 heads of 32 on d_model 128) becomes a ``MistralForCausalLM`` with the sliding window
    off, the same computation, since transformers' ``LlamaConfig`` refuses that shape.

    Built with ``LlamaForCausalLM(config)`` (no download) and filled by ``load_state_dict(strict=True)``.
    Weight layouts: ``W_Q [head, d_model, d_head] -> q_proj.weight [(head d_head), d_model]``; with
    grouped-query attention ``_W_K``/``_W_V [kv_head, d_model, d_head] -> k_proj/v_proj``;
    ``W_O [head, d_head, d_model] -> o_proj.weight [d_model, (head d_head)]``; ``W_in/W_gate/W_out``
    transposed into ``up/gate/down_proj``. Nonzero attention biases set ``attention_bias=True``
    (Qwen2-style q/k/v biases), nonzero MLP biases set ``mlp_bias=True``. Models with folded
    LayerNorm (``RMSPre``) get RMSNorm weights of ones, which computes the same function.
    A Llama-3 NTK-by-parts rotary config becomes ``rope_scaling={"rope_type": "llama3", ...}``.

    Raises ``ValueError`` naming the config field when the model is not Llama-shaped, or when it has
    an unembedding bias (``unembed.b_U``), which ``LlamaForCausalLM`` cannot hold.
    """
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    cfg = model.cfg
    _check_llama_shaped(cfg)
    state, attn_bias, mlp_bias = hf_llama_state_dict(model.state_dict(), cfg)
    # transformers' LlamaConfig refuses n_heads * d_head != d_model; MistralConfig (the same
    # architecture without biases, sliding window off) takes head_dim as given.
    as_mistral = cfg.d_model % cfg.n_heads != 0 or cfg.d_model != cfg.n_heads * cfg.d_head
    if as_mistral and (attn_bias or mlp_bias):
        raise ValueError(
            f"d_model={cfg.d_model} is not n_heads={cfg.n_heads} x d_head={cfg.d_head}, which only "
            "MistralForCausalLM can hold, and Mistral has no attention or MLP biases, but this model's are "
            "nonzero. Zero them (or fold them away) before converting.")
    n_heads, d_head, n_layers = cfg.n_heads, cfg.d_head, cfg.n_layers
    n_kv = int(cfg.n_key_value_heads) if cfg.n_key_value_heads is not None else n_heads
    tok = getattr(model, "tokenizer", None)
    rope: dict[str, Any] = {"rope_type": "default", "rope_theta": float(cfg.rotary_base)}
    if getattr(cfg, "use_NTK_by_parts_rope", False):
        rope = {
            "rope_type": "llama3",
            "rope_theta": float(cfg.rotary_base),
            "factor": float(cfg.NTK_by_parts_factor),
            "low_freq_factor": float(cfg.NTK_by_parts_low_freq_factor),
            "high_freq_factor": float(cfg.NTK_by_parts_high_freq_factor),
            "original_max_position_embeddings": int(cfg.NTK_original_ctx_len),
        }
    config_class, model_class = (MistralConfig, MistralForCausalLM) if as_mistral else (LlamaConfig, LlamaForCausalLM)
    extra: dict[str, Any] = {"sliding_window": None} if as_mistral else {"attention_bias": attn_bias, "mlp_bias": mlp_bias}
    hf_cfg = config_class(
        vocab_size=cfg.d_vocab,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_mlp,
        num_hidden_layers=n_layers,
        num_attention_heads=n_heads,
        num_key_value_heads=n_kv,
        head_dim=d_head,
        hidden_act=_ACT_TO_HF[cfg.act_fn],
        max_position_embeddings=cfg.n_ctx,
        rms_norm_eps=cfg.eps,
        rope_parameters=rope,
        tie_word_embeddings=False,
        bos_token_id=getattr(tok, "bos_token_id", None),
        eos_token_id=getattr(tok, "eos_token_id", None),
        pad_token_id=getattr(tok, "pad_token_id", None),
        attn_implementation="eager",
        **extra,
    )
    with torch.device("meta"):
        hf = model_class(hf_cfg)
    hf.load_state_dict(state, strict=False, assign=True)
    # Non-persistent buffers (rotary inv_freq) were created on the meta device: rebuild them.
    hf.model.rotary_emb = type(hf.model.rotary_emb)(config=hf_cfg)
    leftover = [n for n, t in list(hf.named_parameters()) + list(hf.named_buffers()) if t.is_meta]
    if leftover:  # pragma: no cover - a transformers layout change
        raise RuntimeError(f"as_bridge left tensors unset in the Hugging Face model: {leftover[:5]}")
    hf = hf.to(device=next(model.parameters()).device)
    hf.eval()
    return hf


def _boot(hf_model: Any, tokenizer: Any, model_name: str) -> TransformerBridge:
    _require_bridge()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bridge = TransformerBridge.boot_transformers(
            model_name=model_name,
            hf_model=hf_model,
            tokenizer=tokenizer,
            device=str(next(hf_model.parameters()).device),
            dtype=next(hf_model.parameters()).dtype,
            trust_remote_code=False,
        )
    enable_bridge_kv_cache(bridge)
    bridge.eval()
    return bridge


def as_bridge(model: HookedTransformer) -> TransformerBridge:
    """The same Llama-shaped weights as a ``TransformerBridge``, booted offline.

    Args:
        model: a Llama-shaped ``HookedTransformer`` (rotary, RMSNorm, gated MLP; grouped-query
            attention allowed), e.g. from :func:`rhlens.tiny_llama` or :func:`rhlens.load_hf_checkpoint`.

    Returns:
        A ``TransformerBridge`` over a fresh ``LlamaForCausalLM`` (eager attention, same dtype and
        device), carrying ``model.tokenizer``. Logits equal ``model``'s to float32 rounding
        (``< 1e-4``). Hooks ``blocks.{L}.attn.hook_q/k/v/rot_q/rot_k/attn_scores/pattern/z`` fire with
        the HookedTransformer's shapes (``hook_k``/``hook_v``/``hook_rot_k`` are per key/value head
        under GQA, like HookedTransformer's). The bridge records how its weights were processed
        (same flags as ``model``) for :func:`rhlens.adapter.weight_processing`.

    Raises:
        ValueError: naming the config field when the model is not Llama-shaped.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> tok = word_level_tokenizer(["The sky is blue ."])
    >>> model = tiny_llama(tokenizer=tok, n_key_value_heads=2)
    >>> bridge = as_bridge(model)
    >>> tokens = model.to_tokens("The sky is blue .")
    >>> bool((bridge(tokens) - model(tokens)).abs().max() < 1e-4)
    True
    """
    hf = hf_llama_from_hooked(model)
    bridge = _boot(hf, getattr(model, "tokenizer", None), model_name=f"rhlens/{model.cfg.model_name}")
    recorded = getattr(model, WEIGHT_PROCESSING_ATTR, None)
    if recorded is not None:
        record_weight_processing(bridge, **recorded)
    return bridge


def load_bridge(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> TransformerBridge:
    """A ``TransformerBridge`` on a local Hugging Face folder, offline (eager attention).

    The folder is checked like :func:`rhlens.load_hf_checkpoint` checks it (``config.json``, weights,
    a fast tokenizer whose vocabulary fits the embedding), then loaded with
    ``AutoModelForCausalLM.from_pretrained(path, local_files_only=True, attn_implementation="eager")``.
    Unlike :func:`as_bridge`, any architecture TransformerBridge supports can be booted this way.

    Example (any local Hugging Face checkpoint folder)::

        bridge = load_bridge("path/to/stories260K")
        logits = bridge(bridge.to_tokens("Once upon a time"))  # [1, pos, 512]

    Runnable: write a tiny Llama as a Hugging Face folder (:func:`hf_llama_from_hooked`), boot it:

    >>> import tempfile
    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> tok = word_level_tokenizer(["The sky is blue ."])
    >>> model = tiny_llama(tokenizer=tok, n_key_value_heads=2)
    >>> folder = tempfile.mkdtemp()
    >>> hf_llama_from_hooked(model).save_pretrained(folder); tok.save_pretrained(folder)  # doctest: +ELLIPSIS
    (...)
    >>> bridge = load_bridge(folder)
    >>> tokens = model.to_tokens("The sky is blue .")
    >>> type(bridge).__name__, bridge(tokens).shape, bool((bridge(tokens) - model(tokens)).abs().max() < 1e-4)
    ('TransformerBridge', torch.Size([1, 6, 9]), True)
    """
    folder = Path(path)
    raw = read_hf_config(folder)
    hf = load_hf_model(folder, raw, dtype=dtype, device=device)
    tok = load_local_tokenizer(folder, vocab_size=int(hf.config.vocab_size))
    bridge = _boot(hf, tok, model_name=str(folder))
    attach_generation_eos(bridge.tokenizer, folder)  # the checkpoint's own stop tokens
    return bridge
