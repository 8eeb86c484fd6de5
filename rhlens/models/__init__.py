"""Build tiny models, load local checkpoints, save and load (safetensors + JSON)."""

from rhlens.models.base import base_card, base_dir, load_base
from rhlens.models.bridge import as_bridge, load_bridge, save_hf_checkpoint
from rhlens.models.hf import SUPPORTED_ARCHITECTURES, CheckpointError, load_hf_checkpoint
from rhlens.models.io import load_model, save_model
from rhlens.models.tiny import tiny_gpt2, tiny_llama
from rhlens.models.tokenizer import default_tokenizer, word_level_tokenizer

__all__ = [
    "SUPPORTED_ARCHITECTURES",
    "CheckpointError",
    "as_bridge",
    "base_card",
    "base_dir",
    "load_base",
    "default_tokenizer",
    "load_bridge",
    "load_hf_checkpoint",
    "load_model",
    "save_hf_checkpoint",
    "save_model",
    "tiny_gpt2",
    "tiny_llama",
    "word_level_tokenizer",
]
