"""A checkpoint folder's weight files (single, sharded, safetensors or ``.bin``) and the Hugging Face
model they fill, offline; nothing is unpickled."""

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from rhlens.models.finite import warn_non_finite
from rhlens.models.hf.folder import (
    BIN_FILE,
    BIN_INDEX,
    CONFIG_FILE,
    SAFETENSORS_FILE,
    SAFETENSORS_INDEX,
    CheckpointError,
    read_hf_config,
    refuse_remote_code,
)

__all__ = ["load_hf_model", "read_hf_state_dict"]

# Tensors a checkpoint may carry that are rebuilt by the model (causal-mask and rotary buffers).
_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias", "rotary_emb.inv_freq")


def _check_shard_path(index: Path, folder: Path, name: Any) -> None:
    """Refuse a ``weight_map`` entry that is absolute or climbs out of ``folder`` (``..``)."""
    if not isinstance(name, str) or not name:
        raise CheckpointError(f"{index}: weight_map value {name!r} is not a file name")
    # Lexical check: symlinked shards (a Hugging Face cache snapshot) stay allowed.
    if Path(name).is_absolute() or ".." in Path(name).parts or "\\" in name or ":" in name:
        raise CheckpointError(
            f"{index}: weight_map entry {name!r} points outside {folder}; shard paths must be file names inside "
            "the checkpoint folder (e.g. 'model-00001-of-00002.safetensors'). Fix the index or move the shards."
        )


def _weight_files(folder: Path) -> list[Path]:
    """The weight files to read, checking that every shard named by an index exists."""
    for index_name in (SAFETENSORS_INDEX, BIN_INDEX):
        index = folder / index_name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise CheckpointError(f"{index}: not a valid shard index (needs a 'weight_map' object): {exc}") from None
            if not isinstance(weight_map, dict):
                raise CheckpointError(f"{index}: field 'weight_map' must be an object of tensor name -> shard file")
            shards = sorted(set(weight_map.values()), key=str)
            for shard_name in shards:
                _check_shard_path(index, folder, shard_name)
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(
                    f"{index} lists shard(s) that are missing from {folder}: {missing[:5]}; copy every shard "
                    "of the checkpoint into the folder"
                )
            return [folder / s for s in shards]
    for name in (SAFETENSORS_FILE, BIN_FILE):
        if (folder / name).is_file():
            return [folder / name]
    others = sorted(p.name for p in folder.glob("*.safetensors"))
    if len(others) == 1:
        return [folder / others[0]]
    raise CheckpointError(
        f"no weights in {folder}: expected {SAFETENSORS_FILE}, {SAFETENSORS_INDEX} with its shards, or {BIN_FILE}. "
        "Save them with model.save_pretrained(folder) (safetensors is the default)."
    )


def read_hf_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder's weight files, keyed as in the files. Never unpickles.

    Safetensors files are read with ``safetensors.torch.load_file``; ``.bin`` files with
    ``torch.load(..., weights_only=True)`` (plain tensors only). Tensors holding NaN or inf are
    named in a :class:`rhlens.models.finite.NonFiniteWeightsWarning`.
    """
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for file in _weight_files(Path(path)):
        try:
            if file.suffix == ".safetensors":
                part = load_file(str(file), device="cpu")
            else:
                part = torch.load(file, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - rewrap with the file name
            raise CheckpointError(f"cannot read weights from {file}: {exc}. Re-save the checkpoint as safetensors.") from None
        if not isinstance(part, dict):
            raise CheckpointError(f"{file} does not hold a flat name -> tensor mapping")
        warn_non_finite(part, file, stacklevel=4)
        out.update(part)
    return out


def load_hf_model(
    path: str | os.PathLike,
    raw: dict[str, Any] | None = None,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Any:
    """The folder's Hugging Face ``*ForCausalLM`` with its weights (eager attention), offline.

    The model class is built from ``config.json`` with ``_from_config`` (no download) and filled
    from :func:`read_hf_state_dict`; tied embeddings (``tie_word_embeddings``) are re-tied. Missing
    or unexpected tensors, and tensors whose shape contradicts ``config.json``, raise
    :class:`CheckpointError`.
    """
    import transformers
    from transformers import AutoConfig

    folder = Path(path)
    raw = raw if raw is not None else read_hf_config(folder)
    arch = raw["architectures"][0]
    model_cls = getattr(transformers, arch)
    try:
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001
        refuse_remote_code(folder)
        raise CheckpointError(f"{folder / CONFIG_FILE}: transformers cannot read it: {exc}") from None
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # pragma: no cover - older transformers
        from transformers.modeling_utils import no_init_weights  # type: ignore[no-redef]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with no_init_weights():
            hf = model_cls._from_config(hf_config, attn_implementation="eager", dtype=dtype)
    state = read_hf_state_dict(folder)
    prefix = model_cls.base_model_prefix
    expected = set(hf.state_dict())
    if not any(k.startswith(prefix + ".") for k in state) and any(k.startswith(prefix + ".") for k in expected):
        state = {(k if k.startswith("lm_head.") else f"{prefix}.{k}"): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not k.endswith(_IGNORED_SUFFIXES)}
    tied = bool(getattr(hf.config, "tie_word_embeddings", False))
    missing = sorted(expected - set(state) - ({"lm_head.weight"} if tied else set()))
    unexpected = sorted(set(state) - expected)
    files = ", ".join(p.name for p in _weight_files(folder))
    if missing or unexpected:
        raise CheckpointError(
            f"the weights in {folder} ({files}) do not match {CONFIG_FILE} ({arch}): "
            f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}, unexpected {unexpected[:4]}"
            f"{' ...' if len(unexpected) > 4 else ''}. Check num_hidden_layers, tie_word_embeddings and "
            "architectures in config.json against the checkpoint, or re-save it with save_pretrained."
        )
    try:
        hf.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(
            f"tensor shapes in {folder} ({files}) contradict {CONFIG_FILE}: {exc}. Fix hidden_size, "
            "intermediate_size, num_attention_heads, num_key_value_heads, head_dim or vocab_size."
        ) from None
    if tied:
        hf.tie_weights()
    return hf.to(device).eval()
