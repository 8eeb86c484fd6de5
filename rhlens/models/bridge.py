"""The same weights as a TransformerLens ``TransformerBridge``, booted offline.

``TransformerBridge`` (TransformerLens 4's model class, shipped in 3.9) wraps a Hugging Face model
and exposes HookedTransformer-style hook names. rhlens uses it to run the same analyses on the
Hugging Face execution path (its attention, its KV cache).

- :func:`as_bridge` converts a Llama-shaped ``HookedTransformer`` (e.g. :func:`rhlens.tiny_llama`,
  or :func:`rhlens.load_hf_checkpoint` of a Llama/Mistral/Qwen2 folder) back to a Hugging Face
  ``LlamaForCausalLM`` built with ``from_config`` (no download) and boots a bridge on it.
- :func:`load_bridge` boots a bridge on a local Hugging Face folder, offline.
- :func:`save_hf_checkpoint` writes a model rhlens built as such a folder.

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
from pathlib import Path
from typing import Any

import torch

from rhlens.adapter.core import WEIGHT_PROCESSING_ATTR, Model, TransformerBridge, model_kind, record_weight_processing
from rhlens.adapter.native import boot_bridge, bridge_from_hf, hf_model_from_config, model_config, model_state
from rhlens.models.hf.folder import read_hf_config
from rhlens.models.hf.tokenizer import load_local_tokenizer
from rhlens.models.hf.weights import load_hf_model
from rhlens.stopping import attach_generation_eos

__all__ = ["as_bridge", "hf_llama_from_hooked", "load_bridge", "save_hf_checkpoint"]


def hf_llama_from_hooked(model: Model) -> Any:
    """A Hugging Face ``LlamaForCausalLM`` (or ``GPT2LMHeadModel``) with exactly ``model``'s weights (eager attention).

    ``model`` is a model rhlens built or loaded (a ``HookedTransformer`` on TransformerLens 3, a
    bridge on 4). Weight layouts: :mod:`rhlens.adapter.layout` (``W_Q [head, d_model, d_head] ->
    q_proj.weight [(head d_head), d_model]`` ...). Nonzero attention biases set
    ``attention_bias=True``; nonzero MLP biases set ``mlp_bias=True``, with TransformerLens's
    ``b_in`` (added after ``act(gate) * up``) folded exactly into ``down_proj.bias``; a nonzero
    unembedding bias gives the model a biased ``lm_head`` (``lm_head.bias``). Heads that do not tile
    ``d_model`` (the embedded base: 12 heads of 32 on 128) keep ``head_dim`` as given. Models with
    folded LayerNorm (``RMSPre``) get RMSNorm weights of ones, which computes the same function.

    Raises ``ValueError`` naming each config field a Hugging Face Llama / GPT-2 cannot express.
    """
    hf = hf_model_from_config({**model_config(model), "seed": None}, model_state(model), tokenizer=getattr(model, "tokenizer", None))
    return hf.to(device=next(model.parameters()).device)


def as_bridge(model: Model) -> TransformerBridge:
    """The same Llama-shaped weights as a ``TransformerBridge``, booted offline.

    Args:
        model: a Llama-shaped ``HookedTransformer`` (rotary, RMSNorm, gated MLP; grouped-query
            attention allowed), e.g. from :func:`rhlens.tiny_llama` or :func:`rhlens.load_hf_checkpoint`.

    Returns:
        ``model`` itself when it is a bridge already; else a ``TransformerBridge`` over a fresh ``LlamaForCausalLM`` (eager attention, same dtype and
        device), carrying ``model.tokenizer``. Logits equal ``model``'s to float32 rounding
        (``< 1e-4``). Hooks ``blocks.{L}.attn.hook_q/k/v/rot_q/rot_k/attn_scores/pattern/z`` fire with
        the HookedTransformer's shapes (``hook_k``/``hook_v``/``hook_rot_k`` are per key/value head
        under GQA, like HookedTransformer's). The bridge records how its weights were processed
        (same flags as ``model``) for :func:`rhlens.adapter.weight_processing`.

    Raises:
        ValueError: naming the config field when the model is not Llama- or GPT-2-shaped.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> tok = word_level_tokenizer(["The sky is blue ."])
    >>> model = tiny_llama(tokenizer=tok, n_key_value_heads=2)
    >>> bridge = as_bridge(model)
    >>> tokens = model.to_tokens("The sky is blue .")
    >>> bool((bridge(tokens) - model(tokens)).abs().max() < 1e-4)
    True
    """
    if model_kind(model) == "bridge":  # already one (on TransformerLens 4 every model is)
        return model
    tok = getattr(model, "tokenizer", None)
    bridge = bridge_from_hf(model_config(model), hf_llama_from_hooked(model), tok, getattr(tok, "padding_side", None))
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
    bridge = boot_bridge(hf, tok, model_name=str(folder))
    attach_generation_eos(bridge.tokenizer, folder)  # the checkpoint's own stop tokens
    return bridge


def save_hf_checkpoint(model: Model, path: str | os.PathLike, *, dtype: torch.dtype | None = None) -> Path:
    """Write ``model`` as a local Hugging Face checkpoint folder (``config.json``, ``model.safetensors``,
    the tokenizer's files) that :func:`rhlens.load_hf_checkpoint` loads as a ``HookedTransformer`` on
    TransformerLens 3 and as a ``TransformerBridge`` on 4, with ``model``'s logits. Returns the folder.

    The weights are :func:`hf_llama_from_hooked`'s (a Llama, or a Mistral where the heads do not
    tile ``d_model``), stored in ``dtype`` when given (``torch.bfloat16`` halves the file; the loader
    casts to the dtype it is asked for). The folder is written as a temporary sibling and renamed
    into place; an existing folder is replaced only when it is a Hugging Face checkpoint folder
    (holds ``config.json``) or empty.

    Raises ``ValueError`` naming what has no Hugging Face form: a nonzero unembedding bias (a Llama
    ``lm_head`` has none, and ``from_pretrained`` would drop it), or a config field
    :func:`hf_llama_from_hooked` refuses.

    >>> import tempfile
    >>> from rhlens.models import load_hf_checkpoint, tiny_llama, word_level_tokenizer
    >>> model = tiny_llama(tokenizer=word_level_tokenizer(["The sky is blue ."]), n_key_value_heads=2)
    >>> folder = save_hf_checkpoint(model, tempfile.mkdtemp() + "/hf")
    >>> again = load_hf_checkpoint(folder)
    >>> tokens = model.to_tokens("The sky is blue .")
    >>> sorted(p.name for p in folder.iterdir() if p.suffix == ".json")[:2], bool((again(tokens) - model(tokens)).abs().max() < 1e-5)
    (['config.json', 'generation_config.json'], True)
    """
    from rhlens.files import replaced_folder

    b_u = model_state(model).get("unembed.b_U")
    if b_u is not None and bool(b_u.abs().max() > 0):
        raise ValueError(
            f"save_hf_checkpoint: the model has a nonzero unembedding bias (unembed.b_U, max |b_U| = "
            f"{float(b_u.abs().max()):.3g}); a Hugging Face Llama's lm_head has none. Save it with rhlens.save_model, "
            "or train it with rhlens.train, which keeps b_U at 0 where it starts at 0"
        )
    hf = hf_llama_from_hooked(model)
    if dtype is not None:
        hf = hf.to(dtype)
    with replaced_folder(path, marker="config.json", kind="a Hugging Face checkpoint folder",
                         who="save_hf_checkpoint", what="the checkpoint folder") as tmp:
        hf.save_pretrained(str(tmp))
        tok = getattr(model, "tokenizer", None)
        if tok is not None:
            tok.save_pretrained(str(tmp))
    return Path(path)
