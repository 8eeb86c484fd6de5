"""The thin trainer: answer-only fine-tuning, LoRA, exact resume, data parallel, context extension.

Modules, one job each:

- :mod:`rhlens.train.config`: :class:`TrainConfig` (TOML/JSON loadable).
- :mod:`rhlens.train.data`: encoding, data order, answer-only batches.
- :mod:`rhlens.train.loss`: the answer-token loss.
- :mod:`rhlens.train.lora`: LoRA adapters on W_Q/W_K/W_V/W_O, merged for analysis.
- :mod:`rhlens.train.optim`: AdamW and the warm-up + cosine schedule.
- :mod:`rhlens.train.checkpoint`: atomic safetensors/JSON checkpoints and resume.
- :mod:`rhlens.train.distributed`: ``torchrun``/``accelerate launch`` data parallelism.
- :mod:`rhlens.train.metrics`: JSONL log, tqdm bar, optional wandb.
- :mod:`rhlens.train.loop`: :func:`train`.
- :mod:`rhlens.train.context`: :func:`extend_context`.

``rhlens.train`` names both this package and the function :func:`train`; whichever of the two
the attribute holds (it depends on import order), calling it trains:

>>> import rhlens, rhlens.train
>>> callable(rhlens.train)
True
"""

import sys
import types

from rhlens.train.checkpoint import latest_checkpoint, list_checkpoints
from rhlens.train.config import TrainConfig
from rhlens.train.context import extend_context
from rhlens.train.lora import apply_lora, merge_lora
from rhlens.train.loop import NonFiniteLossError, TrainResult, train

__all__ = [
    "NonFiniteLossError",
    "TrainConfig",
    "TrainResult",
    "apply_lora",
    "extend_context",
    "latest_checkpoint",
    "list_checkpoints",
    "merge_lora",
    "train",
]


class _CallablePackage(types.ModuleType):
    """The ``rhlens.train`` package, callable as :func:`rhlens.train.loop.train`."""

    def __call__(self, *args, **kwargs):
        return train(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
