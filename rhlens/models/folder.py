"""Any model folder: one written by :func:`rhlens.save_model` (``rhlens_model.json``) or a local
Hugging Face checkpoint (``config.json``), told apart by what it holds. The one loader the tools
(``rhlens study``, ``rhlens scores / knockout / patch``) call.

>>> import tempfile
>>> from rhlens.models import save_model, tiny_llama
>>> folder = save_model(tiny_llama(n_layers=2), tempfile.mkdtemp() + "/m")
>>> folder_kind(folder), folder_shape(folder)["n_layers"], load_folder(folder).cfg.n_layers
('rhlens', 2, 2)
>>> folder_kind(tempfile.mkdtemp())  # doctest: +ELLIPSIS
Traceback (most recent call last):
FileNotFoundError: model ... holds neither rhlens_model.json (rhlens.save_model) nor config.json (a Hugging Face checkpoint)
"""

import os
from pathlib import Path
from typing import Any, Literal

import torch

from rhlens.dtypes import check_dtype_name

from rhlens.models.hf import CONFIG_FILE, hf_config_fields, load_hf_checkpoint, read_hf_config
from rhlens.models.io import MANIFEST_FILE, load_model, read_manifest

FolderKind = Literal["rhlens", "hf"]
SHAPE = ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "d_vocab", "n_ctx", "n_key_value_heads")
"""The fields :func:`folder_shape` reads."""


def folder_kind(path: str | os.PathLike) -> FolderKind:
    """``"rhlens"`` (a :func:`rhlens.save_model` folder) or ``"hf"`` (a Hugging Face checkpoint);
    ``FileNotFoundError`` naming the folder otherwise."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model {folder} is not a folder; pass an rhlens.save_model folder or a Hugging "
                                "Face checkpoint folder")
    if (folder / MANIFEST_FILE).is_file():
        return "rhlens"
    if (folder / CONFIG_FILE).is_file():
        return "hf"
    raise FileNotFoundError(f"model {folder} holds neither {MANIFEST_FILE} (rhlens.save_model) nor {CONFIG_FILE} "
                            "(a Hugging Face checkpoint)")


def folder_shape(path: str | os.PathLike) -> dict[str, Any]:
    """The model's shape (:data:`SHAPE`: ``n_layers``, ``n_heads``, ..., ``n_key_value_heads``
    ``None`` without GQA), read from the folder's config file alone (no weights loaded); a Hugging
    Face ``config.json`` is mapped and checked as :func:`rhlens.load_hf_checkpoint` maps it."""
    if folder_kind(path) == "rhlens":
        config = read_manifest(path).get("config") or {}
        return {k: config.get(k) for k in SHAPE}
    # device "meta": the shape only (nothing is placed, so no check of free memory)
    cfg = hf_config_fields(read_hf_config(path), source=Path(path) / CONFIG_FILE, device="meta")
    return {k: cfg.get(k) for k in SHAPE}


def load_folder(path: str | os.PathLike, *, device: str | torch.device = "cpu",
                dtype: str | torch.dtype = "float32") -> Any:
    """The model in ``path`` (:func:`rhlens.load_model` or :func:`rhlens.load_hf_checkpoint`, by
    :func:`folder_kind`). ``dtype`` (a name such as ``"bfloat16"`` or a ``torch.dtype``) applies
    to a Hugging Face checkpoint; an rhlens folder keeps its saved dtype."""
    if folder_kind(path) == "rhlens":
        return load_model(path, device=device)
    torch_dtype = getattr(torch, check_dtype_name(dtype, "dtype")) if isinstance(dtype, str) else dtype
    if not isinstance(torch_dtype, torch.dtype):
        raise ValueError(f"dtype={dtype!r} is not a torch dtype name such as 'float32' or 'bfloat16'")
    return load_hf_checkpoint(path, dtype=torch_dtype, device=device)
