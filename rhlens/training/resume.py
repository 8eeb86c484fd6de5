"""What makes two training runs the same run: the trajectory config, the step count and the data.

A resumed run must agree with the saved one on all three, or its trajectory would differ from an
uninterrupted run's; :func:`check_resume` refuses it, naming what changed.

>>> from rhlens.training.config import TrainConfig
>>> sorted(trajectory_config(TrainConfig(lr=1e-3)))[:3]
['batch_size', 'betas', 'eps']
"""

import hashlib
from typing import Any, Sequence

import numpy as np

from rhlens.encoding import EncodedExample
from rhlens.training import checkpoint as ckpt_io
from rhlens.training.config import TrainConfig

__all__ = ["TRAJECTORY_KEYS", "check_resume", "data_fingerprint", "trajectory_config"]

# Config fields that shape the training trajectory: a resumed run must agree on all of them.
TRAJECTORY_KEYS = (
    "lr", "weight_decay", "betas", "eps", "warmup_steps", "min_lr_ratio", "max_grad_norm", "batch_size",
    "seed", "shuffle", "trainable", "lora_rank", "lora_alpha", "lora_targets", "padding_side", "truncation",
)


def data_fingerprint(encoded: Sequence[EncodedExample]) -> str:
    """SHA-1 over every example's tokens and answer span, in order."""
    h = hashlib.sha1()
    for enc in encoded:
        h.update(np.asarray(enc.tokens, dtype=np.int64).tobytes())
        h.update(np.asarray(enc.completion_span, dtype=np.int64).tobytes())
    return h.hexdigest()


def trajectory_config(config: TrainConfig) -> dict[str, Any]:
    """The :data:`TRAJECTORY_KEYS` fields of ``config``."""
    current = config.to_dict()
    return {k: current[k] for k in TRAJECTORY_KEYS}


def check_resume(ckpt: ckpt_io.Checkpoint, config: TrainConfig, total_steps: int, fingerprint: str) -> None:
    """Refuse to resume a run whose trajectory would differ: config, step count or data."""
    saved, current = ckpt.state.get("config", {}), config.to_dict()
    diffs = [f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in TRAJECTORY_KEYS if saved.get(k) != current[k]]
    if diffs:
        raise ValueError(
            f"cannot resume from {ckpt.path}: the config changed ({'; '.join(diffs)}). Resume with the saved "
            "config (TrainConfig.from_dict of its trainer/state.json 'config'), or start a new out_dir."
        )
    if ckpt.state.get("total_steps") != total_steps:
        raise ValueError(
            f"cannot resume from {ckpt.path}: it was a {ckpt.state.get('total_steps')}-step run and this config "
            f"asks for {total_steps} steps (the learning-rate schedule depends on it)"
        )
    if ckpt.state.get("data_fingerprint") != fingerprint:
        raise ValueError(f"cannot resume from {ckpt.path}: the training examples differ from the saved run's")
