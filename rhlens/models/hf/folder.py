"""A Hugging Face checkpoint folder: its file names, supported classes, ``config.json`` and the
refusal to run code shipped in it. Every problem raises :class:`CheckpointError`.

>>> read_hf_config("/no/such/folder")
Traceback (most recent call last):
...
rhlens.models.hf.folder.CheckpointError: /no/such/folder is not a directory: pass the folder that holds config.json and the weights
"""

import json
import os
from pathlib import Path
from typing import Any

from rhlens.files import read_json_object

__all__ = [
    "BIN_FILE",
    "BIN_INDEX",
    "CONFIG_FILE",
    "SAFETENSORS_FILE",
    "SAFETENSORS_INDEX",
    "SUPPORTED_ARCHITECTURES",
    "CheckpointError",
    "read_hf_config",
    "refuse_remote_code",
]

SUPPORTED_ARCHITECTURES: tuple[str, ...] = (
    "LlamaForCausalLM",
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "GPT2LMHeadModel",
)

_MODEL_TYPES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "gpt2": "GPT2LMHeadModel",
}

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_FILE = "pytorch_model.bin"
BIN_INDEX = "pytorch_model.bin.index.json"

class CheckpointError(ValueError):
    """A local checkpoint folder cannot be loaded. The message names the file, the field and the fix."""


_CODE_FIELDS = ("auto_map",)


def refuse_remote_code(folder: str | os.PathLike) -> None:
    """Raise :class:`CheckpointError` when ``folder``'s JSON files ask for custom code (``auto_map``).

    rhlens passes ``trust_remote_code=False`` to every ``from_pretrained`` call, so such a folder
    never runs its code; transformers then fails with a message that suggests
    ``trust_remote_code=True``. Loaders call this after that failure to say what happened instead.
    Returns ``None`` when no file names custom code.
    """
    folder = Path(folder)
    for name in (CONFIG_FILE, "tokenizer_config.json", "processor_config.json", "preprocessor_config.json"):
        path = folder / name
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(raw, dict) and raw.get("auto_map"):
            raise CheckpointError(
                f"{path}: field 'auto_map'={raw['auto_map']!r} asks to run Python code shipped in {folder}; rhlens "
                "never runs code from a model folder (trust_remote_code=False). Use a folder whose classes are "
                "built into transformers (remove 'auto_map', and set 'tokenizer_class' / 'architectures' to a "
                "built-in class such as PreTrainedTokenizerFast / LlamaForCausalLM)."
            )


def read_hf_config(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint folder, with its ``architectures`` entry checked.

    Raises :class:`CheckpointError` when the folder or file is missing, the JSON is invalid, or
    ``architectures`` names no supported class (see :data:`SUPPORTED_ARCHITECTURES`).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is not a directory: pass the folder that holds config.json and the weights")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(
            f"{cfg_path} is missing: a Hugging Face checkpoint folder needs config.json. "
            "Write it with model.config.save_pretrained(folder) (or model.save_pretrained(folder))."
        )
    raw = read_json_object(cfg_path, error=CheckpointError, remedy="restore it from the original checkpoint")
    archs = raw.get("architectures")
    if not archs and raw.get("model_type") in _MODEL_TYPES:
        # config.save_pretrained() of a config that never saw a model omits 'architectures'.
        archs = raw["architectures"] = [_MODEL_TYPES[raw["model_type"]]]
    if not archs or not isinstance(archs, list):
        raise CheckpointError(
            f"{cfg_path}: field 'architectures' is missing or empty; set it to one of "
            f"{list(SUPPORTED_ARCHITECTURES)} (e.g. \"architectures\": [\"LlamaForCausalLM\"])"
        )
    if archs[0] not in SUPPORTED_ARCHITECTURES:
        raise CheckpointError(
            f"{cfg_path}: architectures[0]={archs[0]!r} is not supported by rhlens.load_hf_checkpoint; "
            f"supported: {', '.join(SUPPORTED_ARCHITECTURES)}. For other architectures try "
            "rhlens.models.load_bridge(path) (TransformerBridge) instead."
        )
    return raw
