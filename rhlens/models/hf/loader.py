"""Load a local Hugging Face checkpoint folder as the installed TransformerLens's model, fully offline.

``HookedTransformer.from_pretrained`` accepts only official model names (and may call the Hub);
:func:`load_hf_checkpoint` reads a folder instead:

1. ``config.json`` -> ``HookedTransformerConfig`` fields (:func:`hf_config_fields`), for the
   families in :data:`SUPPORTED_ARCHITECTURES` (Llama, Mistral, Qwen2, GPT-2), with the overrides;
2. the folder's fast tokenizer (``AutoTokenizer.from_pretrained(path, local_files_only=True,
   trust_remote_code=False)``), refused when larger than the embedding;
3. the weights (``model.safetensors``, sharded ``model.safetensors.index.json`` whose shard paths
   must stay inside the folder, or ``pytorch_model.bin`` read with ``torch.load(weights_only=True)``;
   nothing is unpickled) into the Hugging Face model class built from the config (eager attention,
   no download);
4. that model as a ``HookedTransformer`` (TransformerLens 3: TransformerLens's own weight
   conversion and ``load_and_process_state_dict``) or a ``TransformerBridge`` (TransformerLens 4:
   the bridge's ``process_weights``), with the processing flags you ask for (default: none, so
   activations equal the Hugging Face model's): :func:`rhlens.adapter.checkpoint.native_from_hf`.

No code from the folder ever runs: every ``from_pretrained`` call passes ``trust_remote_code=False``,
and a folder whose ``auto_map`` asks for its own classes is refused (:func:`refuse_remote_code`).

Every problem with the folder raises :class:`CheckpointError`, naming the file and field and saying
what to do. The same folder is refused with the same message on both majors.

Memory: on TransformerLens 3 the Hugging Face model and the HookedTransformer exist together while
converting (about twice the weights), and the Hugging Face model is freed before returning; on 4 the
bridge wraps the Hugging Face model itself.

Example: :func:`load_hf_checkpoint`.
"""

import os
from pathlib import Path
from typing import Any

import torch

from rhlens.adapter.checkpoint import native_from_hf
from rhlens.adapter.core import Model
from rhlens.models.hf.config import hf_config_fields
from rhlens.models.hf.folder import CONFIG_FILE, read_hf_config
from rhlens.models.hf.tokenizer import load_local_tokenizer
from rhlens.models.hf.weights import load_hf_model
from rhlens.stopping import attach_generation_eos

__all__ = ["load_hf_checkpoint"]


def load_hf_checkpoint(
    path: str | os.PathLike,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    fold_ln: bool = False,
    center_writing_weights: bool = False,
    center_unembed: bool = False,
    **cfg_overrides: Any,
) -> Model:
    """A local Hugging Face checkpoint folder as a ``HookedTransformer`` (TransformerLens 3) or a
    ``TransformerBridge`` (TransformerLens 4, which has no ``HookedTransformer``) with its tokenizer, offline.

    Both majors map the config, refuse a folder and process the weights the same way; the bridge
    takes the overrides ``n_ctx``, ``rotary_base`` and ``default_prepend_bos`` only.

    Args:
        path: a folder with ``config.json`` (``architectures``: one of
            :data:`SUPPORTED_ARCHITECTURES`), weights (``model.safetensors``, a sharded
            ``model.safetensors.index.json``, or ``pytorch_model.bin``) and a fast tokenizer
            (``tokenizer.json``).
        dtype, device: where the model lives.
        fold_ln, center_writing_weights, center_unembed: TransformerLens weight processing (all off
            by default, so logits and activations equal the Hugging Face model's). The choice is
            recorded with :func:`rhlens.adapter.record_weight_processing`. Value biases are never
            folded, so ``hook_v``/``hook_z`` match the Hugging Face model.
        **cfg_overrides: ``HookedTransformerConfig`` fields, e.g. ``n_ctx=8192`` or
            ``rotary_base=500000.0`` for context extension.

    Returns:
        The model in ``eval()`` mode; ``model.tokenizer`` is the folder's tokenizer (left padding).
        Logits ``[batch, pos, d_vocab]`` match ``transformers``' eager float32 forward to ~1e-6.

    Raises:
        CheckpointError: a missing file, an unsupported architecture, a self-contradicting config,
            or a tokenizer larger than the embedding; the message names the file and field.

    Example (any local Llama-family folder, here karpathy's stories260K converted to Hugging Face)::

        model = load_hf_checkpoint("path/to/stories260K")
        model.cfg.n_layers, model.cfg.n_heads, model.cfg.n_key_value_heads   # (5, 8, 4)
        logits = model(model.to_tokens("Once upon a time"))                   # [1, pos, 512]

    Runnable: write a tiny Llama as a Hugging Face folder with rhlens's converter, load it back:

    >>> import os, tempfile
    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.models.bridge import hf_llama_from_hooked
    >>> tok = word_level_tokenizer(["The sky is blue ."])
    >>> model = tiny_llama(tokenizer=tok, n_key_value_heads=2)
    >>> folder = tempfile.mkdtemp()
    >>> hf_llama_from_hooked(model).save_pretrained(folder); tok.save_pretrained(folder)  # doctest: +ELLIPSIS
    (...)
    >>> sorted(os.listdir(folder))
    ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']
    >>> again = load_hf_checkpoint(folder)
    >>> tokens = model.to_tokens("The sky is blue .")
    >>> again.cfg.n_key_value_heads, bool((again(tokens) - model(tokens)).abs().max() < 1e-4)
    (2, True)
    """
    folder = Path(path)
    raw = read_hf_config(folder)
    fields = hf_config_fields(raw, source=folder / CONFIG_FILE, dtype=dtype, device=device, **cfg_overrides)
    tok = load_local_tokenizer(folder, vocab_size=fields["d_vocab"])
    if "default_prepend_bos" not in cfg_overrides:
        fields["default_prepend_bos"] = tok.bos_token_id is not None
    hf = load_hf_model(folder, raw, dtype=dtype, device="cpu")
    model = native_from_hf(hf, fields, tokenizer=tok, name=str(folder), overrides=cfg_overrides, device=device, fold_ln=fold_ln,
                           center_writing_weights=center_writing_weights, center_unembed=center_unembed)
    del hf
    attach_generation_eos(model.tokenizer, folder)  # TransformerLens keeps its own tokenizer copy
    return model
