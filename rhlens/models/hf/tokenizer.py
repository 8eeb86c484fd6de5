"""A checkpoint folder's fast tokenizer, offline, checked against the embedding size."""

import os
import warnings
from pathlib import Path
from typing import Any

from rhlens.models.hf.folder import CONFIG_FILE, CheckpointError, refuse_remote_code

__all__ = ["load_local_tokenizer", "offline_tokenizer"]


def offline_tokenizer(folder: Path, *, error: type[Exception], fix: str) -> Any:
    """``AutoTokenizer.from_pretrained(folder)`` offline and without code from the folder.

    A failure raises :class:`CheckpointError` when the folder asks for its own code, else
    ``error`` naming the folder, the cause and ``fix``.
    """
    from transformers import AutoTokenizer

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - rewrap with the folder
        refuse_remote_code(folder)
        raise error(f"cannot load the tokenizer in {folder}: {exc}. {fix}") from None

_TOKENIZER_SOURCES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("tokenizer.model",))


def load_local_tokenizer(path: str | os.PathLike, *, vocab_size: int | None = None) -> Any:
    """The folder's fast tokenizer, offline; its vocabulary must fit ``vocab_size`` embeddings.

    Raises :class:`CheckpointError` when no tokenizer files are present, when only a slow
    (Python) tokenizer can be built, or when ``len(tokenizer) > vocab_size``.
    """
    folder = Path(path)
    if not any(all((folder / f).is_file() for f in group) for group in _TOKENIZER_SOURCES):
        raise CheckpointError(
            f"no tokenizer files in {folder}: expected tokenizer.json (or vocab.json + merges.txt, or "
            "tokenizer.model). Save the tokenizer with tokenizer.save_pretrained(folder)."
        )
    tok = offline_tokenizer(folder, error=CheckpointError, fix="Re-save it with tokenizer.save_pretrained(folder).")
    if not getattr(tok, "is_fast", False):
        raise CheckpointError(
            f"the tokenizer in {folder} is a slow (Python) tokenizer ({type(tok).__name__}); rhlens needs a fast "
            "one for offset mappings. Convert and save it: AutoTokenizer.from_pretrained(folder, use_fast=True)"
            ".save_pretrained(folder) writes tokenizer.json."
        )
    if vocab_size is not None and len(tok) > vocab_size:
        raise CheckpointError(
            f"the tokenizer in {folder} has {len(tok)} tokens but {CONFIG_FILE} vocab_size={vocab_size}: ids past "
            f"{vocab_size - 1} have no embedding. Use the tokenizer the model was trained with, or resize the "
            "embeddings (model.resize_token_embeddings(len(tokenizer))) and re-save."
        )
    return tok
