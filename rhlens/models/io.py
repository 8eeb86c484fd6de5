"""Save and load rhlens models as safetensors + JSON + tokenizer files. No pickle anywhere.

The format is the same on both TransformerLens majors (``HookedTransformerConfig`` fields and
TransformerLens-keyed weights), so a folder saved on 3.x (``HookedTransformer``) loads on 4.x (a
``TransformerBridge``, :mod:`rhlens.adapter.native`) and back.

A saved model is a folder::

    my_model/
      rhlens_model.json     format, version, HookedTransformerConfig fields (dtype as a string),
                            weight-processing record, padding side, tokenizer present or not
      model.safetensors     parameters (rotary tables and masks are rebuilt from the config)
      tokenizer.json ...    tokenizer.save_pretrained(...) output, when the model has a tokenizer

:func:`save_model` writes everything into a temporary sibling folder and renames it into place; an
existing model folder is replaced only once the new one is complete, so a crash never leaves a
half-written model under the target name. :func:`load_model` gives bit-identical logits.

Examples: :func:`save_model`, :func:`load_model`.
"""

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from rhlens.adapter.core import WEIGHT_PROCESSING_ATTR, Model, record_weight_processing
from rhlens.adapter.native import StateMismatchError, config_field_names, model_config, model_from_state, model_state
from rhlens.models.finite import warn_non_finite
from rhlens.models.hf.tokenizer import offline_tokenizer

__all__ = ["MANIFEST_FILE", "WEIGHTS_FILE", "load_model", "save_model"]

FORMAT = "rhlens-hooked-transformer"
VERSION = 1
MANIFEST_FILE = "rhlens_model.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"

# Config fields not saved: derived at construction, machine-specific, or with side effects
# (``seed`` reseeds the global RNGs when a config is built).
_UNSAVED_FIELDS = {"device", "n_devices", "n_params", "seed", "init_weights"}


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _parse_dtype(name: str, source: Path) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"{source}: config field 'dtype'={name!r} is not a torch dtype (e.g. 'float32', 'bfloat16')")
    return dtype


def _config_to_json(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in config.items():
        if name in _UNSAVED_FIELDS:
            continue
        if isinstance(value, torch.dtype):
            value = _dtype_name(value)
        elif isinstance(value, tuple):
            value = list(value)
        try:
            json.dumps(value, allow_nan=True)
        except TypeError:
            raise ValueError(
                f"HookedTransformerConfig field {name!r}={value!r} cannot be written to JSON; set it to a plain "
                "value (number, string, list, dict or None) before save_model"
            ) from None
        out[name] = value
    return out


def _tensors_to_save(model: Model) -> dict[str, torch.Tensor]:
    """TransformerLens-keyed tensors minus derived buffers; tensors sharing storage are cloned (safetensors needs it)."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for key, value in model_state(model).items():
        t = value.detach().to("cpu")
        ptr = t.untyped_storage().data_ptr()
        if ptr in seen or not t.is_contiguous():
            t = t.contiguous().clone()
        seen.add(t.untyped_storage().data_ptr())
        out[key] = t
    return out


def save_model(model: torch.nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` (a model rhlens built or loaded; anything else is refused, naming what to do)
    to the folder ``path`` atomically; returns the folder.

    Saves the parameters (``model.safetensors``), the ``HookedTransformerConfig`` fields that
    round-trip (``rhlens_model.json``; ``dtype`` as a string such as ``"float32"``; not ``device``,
    ``seed``, ``n_params``), the weight-processing record (:func:`rhlens.adapter.weight_processing`)
    and the tokenizer files. Rotary ``sin``/``cos`` tables are not saved: :func:`load_model` rebuilds
    them from ``rotary_base``/``rotary_dim``/``n_ctx``.

    The folder is written as a temporary sibling (``.<name>.tmp-<id>``) and renamed into place. An
    existing folder at ``path`` is replaced only after the new one is complete, and only if it is
    an rhlens model folder (holds ``rhlens_model.json``) or empty; anything else is refused.

    >>> import os, tempfile
    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> model = tiny_llama(tokenizer=word_level_tokenizer(["The sky is blue ."]), n_key_value_heads=2)
    >>> folder = save_model(model, tempfile.mkdtemp() + "/tiny")
    >>> folder.name, sorted(os.listdir(folder))
    ('tiny', ['model.safetensors', 'rhlens_model.json', 'tokenizer.json', 'tokenizer_config.json'])
    >>> save_model(model, folder) == folder   # an rhlens model folder is replaced
    True
    """
    try:
        config = model_config(model)
    except TypeError as exc:
        raise TypeError(
            f"save_model saves models rhlens built (tiny_llama, load_model, load_base, load_hf_checkpoint), got "
            f"{type(model).__name__}: {exc}. For a TransformerBridge on a Hugging Face folder, keep that folder; for an "
            "as_bridge wrapper, save the HookedTransformer it wrapped (or a Hugging Face folder with "
            "rhlens.models.bridge.hf_llama_from_hooked(model).save_pretrained(folder))."
        ) from None
    from safetensors.torch import save_file

    from rhlens.files import replaced_folder, respect_umask

    target = Path(path)
    tok = getattr(model, "tokenizer", None)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "config": _config_to_json(config),
        "weight_processing": getattr(model, WEIGHT_PROCESSING_ATTR, None),
        "tokenizer": tok is not None,
        "default_padding_side": getattr(tok, "padding_side", None),
    }
    with replaced_folder(target, marker=MANIFEST_FILE, kind="an rhlens model folder", who="save_model",
                         what="the model folder") as tmp:
        save_file(_tensors_to_save(model), str(tmp / WEIGHTS_FILE), metadata={"format": "pt", "rhlens": FORMAT})
        respect_umask(tmp / WEIGHTS_FILE)
        if tok is not None:
            tok.save_pretrained(str(tmp))
        with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, sort_keys=True)
            fh.flush()
            os.fsync(fh.fileno())
    return target


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The checked ``rhlens_model.json`` of a :func:`save_model` folder (its ``config`` holds the
    model's shape: ``n_layers``, ``n_heads``, ``d_model`` ...); no weights are read.

    >>> import tempfile
    >>> from rhlens.models import tiny_llama
    >>> read_manifest(save_model(tiny_llama(n_layers=3), tempfile.mkdtemp() + "/m"))["config"]["n_layers"]
    3
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST_FILE
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder; pass a folder written by rhlens.save_model")
    if not manifest_path.is_file():
        hint = " It looks like a Hugging Face checkpoint: use rhlens.load_hf_checkpoint(path)." if (folder / "config.json").is_file() else ""
        raise FileNotFoundError(f"{manifest_path} is missing: {folder} was not written by rhlens.save_model.{hint}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{manifest_path} is not valid JSON ({exc}); re-save the model with rhlens.save_model") from None
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: field 'format'={manifest.get('format')!r}, expected {FORMAT!r}")
    if int(manifest.get("version", 0)) > VERSION:
        raise ValueError(
            f"{manifest_path}: field 'version'={manifest['version']} is newer than this rhlens reads ({VERSION}); "
            "upgrade rhlens"
        )
    return manifest


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
) -> Model:
    """Load a folder written by :func:`save_model` (eval mode, on ``device``): a ``HookedTransformer``
    on TransformerLens 3, a ``TransformerBridge`` on 4 (:mod:`rhlens.adapter.native`).

    ``dtype`` casts the weights (default: the saved dtype). The weight-processing record and the
    tokenizer's padding side are restored. Raises ``FileNotFoundError`` naming the missing file, and
    ``ValueError`` naming the field when ``rhlens_model.json`` or the weights do not fit together;
    warns (:class:`rhlens.models.finite.NonFiniteWeightsWarning`) naming each weight holding NaN or inf.

    >>> import tempfile, torch
    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> model = tiny_llama(tokenizer=word_level_tokenizer(["The sky is blue ."]), n_key_value_heads=2)
    >>> folder = save_model(model, tempfile.mkdtemp() + "/tiny")
    >>> again = load_model(folder)
    >>> tokens = model.to_tokens("The sky is blue .")
    >>> torch.equal(model(tokens), again(tokens)), again.cfg.n_key_value_heads, again.training
    (True, 2, False)
    >>> load_model(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileNotFoundError: ...rhlens_model.json is missing: ... was not written by rhlens.save_model.
    """
    from safetensors.torch import load_file

    folder = Path(path)
    manifest_path = folder / MANIFEST_FILE
    manifest = read_manifest(folder)
    weights_path = folder / WEIGHTS_FILE
    if not weights_path.is_file():
        raise FileNotFoundError(f"{weights_path} is missing: copy it from where the model was saved, or re-save the model")
    tok = None
    if manifest.get("tokenizer"):
        if not (folder / TOKENIZER_FILE).is_file():
            raise FileNotFoundError(
                f"{folder / TOKENIZER_FILE} is missing but {MANIFEST_FILE} says the model has a tokenizer; copy the "
                "tokenizer files (tokenizer.json, tokenizer_config.json) back, or re-save the model"
            )
        tok = offline_tokenizer(folder, error=ValueError, fix="Re-save the model with rhlens.save_model.")

    raw = dict(manifest.get("config") or {})
    valid = config_field_names()
    unknown = sorted(set(raw) - valid) if valid is not None else []
    if unknown:
        warnings.warn(f"{manifest_path}: ignoring config fields this TransformerLens does not know: {unknown}", stacklevel=2)
        for key in unknown:
            raw.pop(key)
    raw["dtype"] = dtype if dtype is not None else _parse_dtype(raw.get("dtype", "float32"), manifest_path)
    state = load_file(str(weights_path), device="cpu")
    warn_non_finite(state, weights_path)
    try:
        model = model_from_state(raw, state, tokenizer=tok, padding_side=manifest.get("default_padding_side"), device=device)
    except StateMismatchError as exc:
        raise ValueError(
            f"{weights_path} does not fit {MANIFEST_FILE}'s config: {exc}. "
            "The two files come from different models; re-save the model with rhlens.save_model."
        ) from None
    except ValueError as exc:
        raise ValueError(f"{manifest_path}: field 'config' does not make a model: {exc}") from None
    if manifest.get("weight_processing") is not None:
        record_weight_processing(model, **manifest["weight_processing"])
    return model
