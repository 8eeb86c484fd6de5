"""AdamW and the warm-up + cosine learning-rate schedule.

The schedule is a pure function of the step, so a resumed run follows it exactly:

>>> [round(lr_factor(s, warmup_steps=2, total_steps=6, min_lr_ratio=0.0), 3) for s in range(7)]
[0.5, 1.0, 1.0, 0.854, 0.5, 0.146, 0.0]
"""

import functools
import math
from typing import Iterable

import torch

from rhlens.training.config import TrainConfig


def lr_factor(step: int, *, warmup_steps: int, total_steps: int, min_lr_ratio: float) -> float:
    """Multiplier of the peak LR before optimizer step ``step`` (0-based).

    Linear warm-up ``(step + 1) / warmup_steps`` over the first ``warmup_steps`` steps (no step
    is wasted at LR 0), then a cosine from 1 towards ``min_lr_ratio``, which it would reach at
    ``total_steps`` (one step after the last).
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_optimizer(params: Iterable[torch.nn.Parameter], config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over ``params`` with the config's LR, betas, eps and weight decay."""
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: check TrainConfig.trainable")
    return torch.optim.AdamW(
        params, lr=config.lr, betas=config.betas, eps=config.eps, weight_decay=config.weight_decay, foreach=True
    )


def build_scheduler(optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """``LambdaLR`` applying :func:`lr_factor` (its state is plain numbers: JSON in checkpoints)."""
    fn = functools.partial(
        lr_factor, warmup_steps=config.warmup_steps, total_steps=total_steps, min_lr_ratio=config.min_lr_ratio
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)
