"""rhlens: retrieval heads explain synthetic long-context fine-tuning.

The public API. Names load lazily, so ``import rhlens`` is fast and the task layer works without
importing torch.

>>> import rhlens
>>> rhlens.Head.parse("L4H4")
Head(layer=4, head=4)
"""

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # heads
    "Head": "rhlens.heads",
    "HeadSet": "rhlens.heads",
    # models
    "tiny_llama": "rhlens.models",
    "tiny_gpt2": "rhlens.models",
    "word_level_tokenizer": "rhlens.models",
    "default_tokenizer": "rhlens.models",
    # encoding and generation
    "encode_example": "rhlens.encoding",
    "greedy_generate": "rhlens.generation",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'rhlens' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
