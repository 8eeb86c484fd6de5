"""Setting up one :func:`rhlens.train` run: the plan (encoded data, run identity, what to do with
the run folder) and the start (device, resume point, trainable parameters, optimizer, logs).

:class:`TrainingRun` is what the loop's phases share; :func:`plan_run` has no side effects, so every
process of a distributed run can call it before any process writes.
"""

import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from rhlens.adapter.core import Model, count_hooks, model_device, model_kind, prepends_bos
from rhlens.adapter.fused import fused_unsupported_reason
from rhlens.adapter.hf_form import match_hf_form
from rhlens.adapter.weights import is_attention_parameter
from rhlens.encoding import EncodedExample, pad_id_of
from rhlens.training import checkpoint as ckpt_io
from rhlens.training import distributed as dist_utils
from rhlens.training import run_folder
from rhlens.training.config import TrainConfig
from rhlens.training.data import prepare_examples, torch_seed
from rhlens.training.lora import apply_lora, load_lora_state_dict, lora_parameters
from rhlens.training.run_log import MetricsLog, Progress
from rhlens.training.optim import build_optimizer, build_scheduler
from rhlens.training.resume import check_resume, data_fingerprint, trajectory_config

__all__ = ["TrainingRun", "plan_run", "start_run"]


def _seed_everything(seed: int) -> None:
    torch.manual_seed(torch_seed(seed))
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _resolve_device(model: Model, config: TrainConfig, info: dist_utils.DistInfo) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    device = model_device(model)
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def _select_trainable(model: Model, config: TrainConfig) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` per ``config.trainable`` (adding LoRA adapters) and return the trainables."""
    if config.trainable == "lora":
        apply_lora(model, rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets)
        params = lora_parameters(model)
        for p in params:
            p.requires_grad_(True)
        return params
    params = []
    fixed = match_hf_form(model)  # the biases its Hugging Face form lacks: the same fine-tune on either major
    for name, p in model.named_parameters():
        wanted = (config.trainable == "all" or is_attention_parameter(name)) and name not in fixed
        p.requires_grad_(wanted)
        if wanted:
            params.append(p)
    return params


@dataclass
class TrainingRun:
    """What the phases of one :func:`rhlens.train` call share: the plan (data, identity, folder) first,
    then the optimizer, logs and curves that :func:`start_run` and the steps fill in."""

    model: Model
    config: TrainConfig
    encoded: list[EncodedExample]
    eval_encoded: list[EncodedExample] | None
    eval_examples: Sequence[Any] | None
    pad_id: int
    total_steps: int
    fingerprint: str
    identity: dict[str, Any]
    out_dir: Path | None
    eval_fn: Callable[[Any], float | dict[str, float]] | None
    extra_loss: Callable[[Any, Any], Tensor] | None
    use_fused: bool
    info: dist_utils.DistInfo = field(default_factory=dist_utils.DistInfo)
    device: torch.device | None = None
    params: list[torch.nn.Parameter] = field(default_factory=list)
    optimizer: Any = None
    scheduler: Any = None
    metrics: MetricsLog | None = None
    progress: Progress | None = None
    start_step: int = 0
    loss_curve: list[float] = field(default_factory=list)
    lr_curve: list[float] = field(default_factory=list)
    eval_curve: list[dict[str, float]] = field(default_factory=list)
    tokens_seen: int = 0
    last_ckpt: Path | None = None

    @property
    def run_id(self) -> str:
        return run_folder.run_id(self.identity)


def plan_run(model: Model, examples: Sequence[Any], config: TrainConfig, out_dir: Path | None, **extras: Any) -> tuple[TrainingRun, str]:
    """Encode the data, identify the run and check ``out_dir`` (every process reads, none writes).

    Returns the run and what to do with ``out_dir``: ``"new"``, ``"resume"`` or ``"replace"``.
    """
    tokenizer = getattr(model, "tokenizer", None)
    encode = dict(tokenizer=tokenizer, n_ctx=int(model.cfg.n_ctx), truncation=config.truncation, prepend_bos=prepends_bos(model))
    encoded = prepare_examples(examples, **encode)
    eval_examples = extras["eval_examples"]
    eval_encoded = None
    if eval_examples is not None and len(eval_examples):
        eval_encoded = prepare_examples(eval_examples, **encode, what="evaluation example")
    total_steps = config.total_steps(len(encoded))
    fingerprint = data_fingerprint(encoded)
    identity = run_folder.run_identity(model, trajectory_config(config), total_steps=total_steps, data_fingerprint=fingerprint)
    plan = "new"
    if out_dir is not None:
        plan = run_folder.check_out_dir(out_dir, identity, resume=config.resume, overwrite=config.overwrite)
    use_fused = config.fused_attention is True or (  # "auto": a HookedTransformer only (see TrainConfig)
        config.fused_attention == "auto" and model_kind(model) == "hooked" and fused_unsupported_reason(model) is None
        and count_hooks(model) == 0
    )
    if config.fused_attention is True and count_hooks(model):
        raise ValueError("TrainConfig.fused_attention=True but hooks are attached to the model; remove them first")
    run = TrainingRun(
        model=model, config=config, encoded=encoded, eval_encoded=eval_encoded,
        pad_id=pad_id_of(tokenizer) if tokenizer is not None else 0, total_steps=total_steps,
        fingerprint=fingerprint, identity=identity, out_dir=out_dir, use_fused=use_fused, **extras,
    )
    return run, plan


def start_run(run: TrainingRun, plan: str) -> None:
    """Device, resume point, run folder, trainable parameters, optimizer, schedule and logs."""
    config, model, info = run.config, run.model, run.info
    config.micro_batch_size(info.world_size)  # validates divisibility by processes x accumulation
    run.device = _resolve_device(model, config, info)
    if model_device(model) != run.device:
        model.to(run.device)
    resume_from = ckpt_io.resumable_checkpoint(run.out_dir, run.run_id) if plan == "resume" else None
    if config.resume and plan != "replace" and resume_from is None and info.is_main:
        warnings.warn(f"resume=True but {run.out_dir} holds no complete checkpoint; starting from step 0", stacklevel=3)
    if resume_from is not None:
        check_resume(resume_from, config, run.total_steps, run.fingerprint)
        ckpt_io.load_model_weights(resume_from.path / ckpt_io.MODEL_SUBDIR, model)
    if run.out_dir is not None and info.is_main:
        run_folder.claim_out_dir(run.out_dir, run.identity, replace=plan == "replace")
    _seed_everything(config.seed)
    run.params = _select_trainable(model, config)
    dist_utils.broadcast_parameters(list(model.parameters()), info)
    run.optimizer = build_optimizer(run.params, config)
    run.scheduler = build_scheduler(run.optimizer, config, run.total_steps)
    if resume_from is not None:
        _restore(run, resume_from)
    wandb_cfg = None
    if config.wandb:
        wandb_cfg = {"project": config.wandb_project, "name": config.run_name, "config": config.to_dict()}
    resume_step = run.start_step if resume_from is not None else None
    run.metrics = MetricsLog(run.out_dir, enabled=info.is_main, resume_step=resume_step, wandb_config=wandb_cfg)
    run.progress = Progress(run.total_steps, run.start_step, enabled=config.progress and info.is_main)


def _restore(run: TrainingRun, ckpt: ckpt_io.Checkpoint) -> None:
    """Optimizer, schedule, LoRA adapters and curves of checkpoint ``ckpt``."""
    lora = ckpt_io.load_trainer_state(ckpt, optimizer=run.optimizer, scheduler=run.scheduler)
    if lora is not None:
        load_lora_state_dict(run.model, {k: v.to(run.device) for k, v in lora.items()})
    st = ckpt.state
    run.start_step = ckpt.step
    run.loss_curve, run.lr_curve, run.eval_curve = list(st["loss_curve"]), list(st["lr_curve"]), list(st["eval_curve"])
    run.tokens_seen = int(st["tokens_seen"])
    run.last_ckpt = ckpt.path
