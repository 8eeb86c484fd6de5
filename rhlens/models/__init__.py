"""Build tiny models, load local checkpoints, save and load (safetensors + JSON)."""

from rhlens.models.tiny import tiny_gpt2, tiny_llama
from rhlens.models.tokenizer import default_tokenizer, word_level_tokenizer

__all__ = ["default_tokenizer", "tiny_gpt2", "tiny_llama", "word_level_tokenizer"]
