"""``train``: the whole training loop in one function.

>>> import rhlens
>>> from rhlens.tasks import generate
>>> examples = generate("kv", "symbolic", n=64, context_tokens=48, seed=0, key_chunks=1, value_chunks=1)
>>> model = rhlens.tiny_llama(tokenizer=rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples]))
>>> result = train(model, examples, TrainConfig(steps=5, batch_size=8, progress=False))
>>> len(result.loss_curve)
5

Per optimizer step: take global batch ``step`` of the fixed data order, split it into this
process's micro-batches, sum the answer-token cross-entropy of each micro-batch divided by the
global batch's answer-token count, backpropagate, sum gradients over processes, stop on a non-finite
loss, clip, step AdamW and the schedule; then log, evaluate and checkpoint when due.
"""

import contextlib
import hashlib
import math
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.adapter.core import UnsupportedModelError, count_hooks, model_device, model_kind, prepends_bos
from rhlens.adapter.fused import fused_attention, fused_unsupported_reason
from rhlens.adapter.weights import is_attention_parameter
from rhlens.encoding import EncodedExample, pad_id_of
from rhlens.training import checkpoint as ckpt_io
from rhlens.training import distributed as dist_utils
from rhlens.training.config import TrainConfig
from rhlens.training.data import answer_token_count, batch_indices, collate, prepare_examples, shard
from rhlens.training.lora import (
    apply_lora,
    has_lora,
    load_lora_state_dict,
    lora_parameters,
    lora_state_dict,
    merge_lora,
    merged_state_dict,
)
from rhlens.training.loss import answer_loss_sum, heldout_answer_loss
from rhlens.training.metrics import MetricsLog, Progress
from rhlens.training.optim import build_optimizer, build_scheduler

# Config fields that shape the training trajectory: a resumed run must agree on all of them.
_TRAJECTORY_KEYS = (
    "lr", "weight_decay", "betas", "eps", "warmup_steps", "min_lr_ratio", "max_grad_norm", "batch_size",
    "seed", "shuffle", "trainable", "lora_rank", "lora_alpha", "lora_targets", "padding_side", "truncation",
)


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm) became NaN or infinite; the weights were not updated."""

    def __init__(self, step: int, value: float, last_checkpoint: Path | None, what: str = "loss"):
        self.step, self.value, self.last_checkpoint = step, value, last_checkpoint
        kept = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written yet"
        super().__init__(
            f"{what} is {value} at step {step}; training stopped before updating the weights ({kept}). "
            "Lower TrainConfig.lr, raise warmup_steps, or check the examples of that step."
        )


@dataclass
class TrainResult:
    """What a run produced.

    Attributes:
        loss_curve: mean answer-token loss of each optimizer step (``loss_curve[s - 1]`` is step ``s``).
        eval_curve: one dict per evaluation, ``{"step": s, "eval_loss": ...}`` (or ``eval_score``,
            or the keys an ``eval_fn`` returned). Filled on the main process only.
        final_checkpoint: directory of the last checkpoint (``None`` without ``out_dir``).
        steps: optimizer steps done. tokens_seen: real tokens processed over all processes.
        lr_curve: learning rate used at each step.
    """

    loss_curve: list[float]
    eval_curve: list[dict[str, float]]
    final_checkpoint: Path | None
    steps: int
    tokens_seen: int
    lr_curve: list[float] = field(default_factory=list)

    @property
    def model_dir(self) -> Path | None:
        """The final model as a :func:`rhlens.models.load_model` folder (``None`` without ``out_dir``)."""
        return None if self.final_checkpoint is None else self.final_checkpoint / ckpt_io.MODEL_SUBDIR

    @property
    def losses(self) -> Float[Tensor, "step"]:
        """``loss_curve`` as a tensor (plot-ready)."""
        return torch.tensor(self.loss_curve)


def _fingerprint(encoded: Sequence[EncodedExample]) -> str:
    h = hashlib.sha1()
    for enc in encoded:
        h.update(np.asarray(enc.tokens, dtype=np.int64).tobytes())
        h.update(np.asarray(enc.answer_span, dtype=np.int64).tobytes())
    return h.hexdigest()


def _seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


def _resolve_device(model: Any, config: TrainConfig, info: dist_utils.DistInfo) -> torch.device:
    if config.device is not None:
        return torch.device(config.device)
    device = model_device(model)
    if info.enabled and device.type == "cuda":
        return torch.device("cuda", info.local_rank)
    return device


def _select_trainable(model: Any, config: TrainConfig) -> list[torch.nn.Parameter]:
    """Set ``requires_grad`` per ``config.trainable`` (adding LoRA adapters) and return the trainables."""
    if config.trainable == "lora":
        apply_lora(model, rank=config.lora_rank, alpha=config.lora_alpha, targets=config.lora_targets)
        params = lora_parameters(model)
        for p in params:
            p.requires_grad_(True)
        return params
    params = []
    for name, p in model.named_parameters():
        wanted = config.trainable == "all" or is_attention_parameter(name)
        p.requires_grad_(wanted)
        if wanted:
            params.append(p)
    return params


def _trajectory_config(config: TrainConfig) -> dict[str, Any]:
    current = config.to_dict()
    return {k: current[k] for k in _TRAJECTORY_KEYS}


def _check_resume(ckpt: ckpt_io.Checkpoint, config: TrainConfig, total_steps: int, fingerprint: str) -> None:
    """Refuse to resume a run whose trajectory would differ: config, step count or data."""
    saved, current = ckpt.state.get("config", {}), config.to_dict()
    diffs = [f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in _TRAJECTORY_KEYS if saved.get(k) != current[k]]
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


def _eval_batches(encoded: list[EncodedExample], config: TrainConfig, pad_id: int, device: torch.device):
    size = config.eval_batch_size
    return [
        collate(encoded[i : i + size], pad_id=pad_id, padding_side=config.padding_side).to(device)
        for i in range(0, len(encoded), size)
    ]


def train(
    model: Any,
    examples: Sequence[Any],
    config: TrainConfig | None = None,
    *,
    eval_examples: Sequence[Any] | None = None,
    out_dir: str | Path | None = None,
    eval_fn: Callable[[Any], float | dict[str, float]] | None = None,
    extra_loss: Callable[[Any, Any], Tensor] | None = None,
) -> TrainResult:
    """Fine-tune ``model`` in place on ``examples`` with the loss on answer tokens only.

    Args:
        model: a HookedTransformer with a tokenizer (for text examples).
        examples: :class:`rhlens.tasks.Example` objects (``prompt``, ``completion``) or
            pre-encoded :class:`rhlens.encoding.EncodedExample`.
        config: a :class:`TrainConfig` (default ``TrainConfig()``).
        eval_examples: held-out examples for periodic evaluation (``config.eval_every``) and a
            final one: the held-out answer loss, or ``rhlens.evaluate``'s score when
            ``config.eval_metric == "task"``.
        out_dir: where checkpoints and ``metrics.jsonl`` go; required for ``save_every`` and
            ``resume``. The run's identity (model architecture, trajectory config, steps, data
            fingerprint) is recorded there in ``rhlens_run.json``; a folder that holds another
            run, or this run without ``config.resume``, is refused unless ``config.overwrite``.
        eval_fn: ``eval_fn(model) -> float | dict`` replacing the built-in evaluation (called in
            eval mode under ``torch.no_grad``).
        extra_loss: ``extra_loss(model, batch) -> scalar tensor`` added to each micro-batch's
            loss right after its forward pass (``batch`` is the
            :class:`rhlens.training.data.TrainBatch`); e.g. an auxiliary loss on activations that
            hooks attached around :func:`train` recorded during that forward. It is scaled by
            the micro-batch's share of the global batch, and it is not part of ``loss_curve``.

    Returns:
        :class:`TrainResult`. The model ends with plain (LoRA-merged) weights, the
        ``requires_grad`` flags and train/eval mode it came with.

    Raises:
        ValueError: an example longer than the model's context (naming it and both lengths)
            unless ``config.truncation="left"``; a bad config; resuming with a changed config
            or different data; a model whose parameter shapes do not fit the checkpoint (the
            model is left untouched).
        rhlens.training.checkpoint.RunFolderError: ``out_dir`` holds another run (naming the
            differing fields), or this run while ``resume`` and ``overwrite`` are both off.
        rhlens.training.checkpoint.DamagedCheckpointError: resuming, and no checkpoint is intact
            (a damaged newest one is skipped with a warning; resume goes on from an older one).
        NonFiniteLossError: the loss became NaN/inf (naming the step; the last checkpoint stays).
    """
    config = config or TrainConfig()
    if model_kind(model) != "hooked":
        raise UnsupportedModelError("rhlens.train trains HookedTransformer models; convert a TransformerBridge first")
    if out_dir is None and (config.save_every or config.resume):
        raise ValueError("TrainConfig.save_every / resume need an out_dir to write checkpoints to")
    out_dir = Path(out_dir) if out_dir is not None else None

    tokenizer = getattr(model, "tokenizer", None)
    n_ctx = int(model.cfg.n_ctx)
    bos = prepends_bos(model)
    encoded = prepare_examples(examples, tokenizer=tokenizer, n_ctx=n_ctx, truncation=config.truncation, prepend_bos=bos)
    eval_encoded = None
    if eval_examples is not None and len(eval_examples):
        eval_encoded = prepare_examples(
            eval_examples, tokenizer=tokenizer, n_ctx=n_ctx, truncation=config.truncation, prepend_bos=bos,
            what="evaluation example",
        )
    pad_id = pad_id_of(tokenizer) if tokenizer is not None else 0
    total_steps = config.total_steps(len(encoded))
    fingerprint = _fingerprint(encoded)
    identity = ckpt_io.run_identity(model, _trajectory_config(config), total_steps=total_steps, data_fingerprint=fingerprint)
    run_id = ckpt_io.run_id(identity)
    plan = "new"
    if out_dir is not None:  # every process checks (reads only) before any process writes
        plan = ckpt_io.check_out_dir(out_dir, identity, resume=config.resume, overwrite=config.overwrite)

    use_fused = config.fused_attention is True or (
        config.fused_attention == "auto" and fused_unsupported_reason(model) is None and count_hooks(model) == 0
    )
    if config.fused_attention is True and count_hooks(model):
        raise ValueError("TrainConfig.fused_attention=True but hooks are attached to the model; remove them first")

    was_training = model.training
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}

    info = dist_utils.setup(model_device(model).type if config.device is None else torch.device(config.device).type)
    metrics = None
    progress = None
    try:
        config.micro_batch_size(info.world_size)  # validates divisibility by processes x accumulation
        device = _resolve_device(model, config, info)
        if model_device(model) != device:
            model.to(device)
        resume_from = ckpt_io.resumable_checkpoint(out_dir, run_id) if plan == "resume" else None
        if config.resume and plan != "replace" and resume_from is None and info.is_main:
            warnings.warn(f"resume=True but {out_dir} holds no complete checkpoint; starting from step 0", stacklevel=2)
        if resume_from is not None:
            _check_resume(resume_from, config, total_steps, fingerprint)
            ckpt_io.load_model_weights(resume_from.path / ckpt_io.MODEL_SUBDIR, model)
        if out_dir is not None and info.is_main:
            ckpt_io.claim_out_dir(out_dir, identity, replace=plan == "replace")
        last_ckpt: Path | None = resume_from.path if resume_from is not None else None

        _seed_everything(config.seed)
        params = _select_trainable(model, config)
        dist_utils.broadcast_parameters(list(model.parameters()), info)
        optimizer = build_optimizer(params, config)
        scheduler = build_scheduler(optimizer, config, total_steps)
        start_step, loss_curve, lr_curve, eval_curve, tokens_seen = 0, [], [], [], 0
        if resume_from is not None:
            lora = ckpt_io.load_trainer_state(resume_from, optimizer=optimizer, scheduler=scheduler)
            if lora is not None:
                load_lora_state_dict(model, {k: v.to(device) for k, v in lora.items()})
            st = resume_from.state
            start_step = resume_from.step
            loss_curve, lr_curve, eval_curve = list(st["loss_curve"]), list(st["lr_curve"]), list(st["eval_curve"])
            tokens_seen = int(st["tokens_seen"])

        wandb_cfg = None
        if config.wandb:
            wandb_cfg = {"project": config.wandb_project, "name": config.run_name, "config": config.to_dict()}
        metrics = MetricsLog(out_dir, enabled=info.is_main, resume_step=start_step if resume_from else None, wandb_config=wandb_cfg)
        progress = Progress(total_steps, start_step, enabled=config.progress and info.is_main)

        def evaluate_now(step: int) -> None:
            if not info.is_main or (eval_fn is None and eval_encoded is None):
                return
            model.eval()
            try:
                with torch.no_grad():
                    if eval_fn is not None:
                        value = eval_fn(model)
                        record = dict(value) if isinstance(value, dict) else {"eval": float(value)}
                    elif config.eval_metric == "task":
                        try:
                            from rhlens.evaluation import evaluate
                        except ImportError as err:
                            raise ImportError("TrainConfig.eval_metric='task' needs rhlens.evaluation") from err
                        result = evaluate(
                            model, eval_examples, batch_size=config.eval_batch_size,
                            max_new_tokens=config.eval_max_new_tokens, progress=False,
                        )
                        record = {"eval_score": float(result.score)}
                    else:
                        record = {"eval_loss": heldout_answer_loss(model, _eval_batches(eval_encoded, config, pad_id, device))}
            finally:
                model.train()
            record = {"step": step, **record}
            eval_curve.append(record)
            metrics.log(record)

        def save(step: int) -> Path:
            lora_state = lora_state_dict(model) if has_lora(model) else None
            state = {
                "examples_seen": step * config.batch_size,
                "total_steps": total_steps,
                "world_size": info.world_size,
                "config": config.to_dict(),
                "data_fingerprint": fingerprint,
                "run_id": run_id,
                "run_identity": identity,
                "n_examples": len(encoded),
                "loss_curve": loss_curve,
                "lr_curve": lr_curve,
                "eval_curve": eval_curve,
                "tokens_seen": tokens_seen,
            }
            path = ckpt_io.save_checkpoint(
                out_dir, step=step, model=model, model_state=merged_state_dict(model), optimizer=optimizer,
                scheduler=scheduler, state=state, lora_state=lora_state,
            )
            ckpt_io.prune_checkpoints(out_dir, config.keep_last, run_id)
            return path

        autocast = (
            torch.autocast(device.type, dtype=torch.bfloat16 if config.autocast == "bf16" else torch.float16)
            if config.autocast else contextlib.nullcontext()
        )
        fused = fused_attention(model) if use_fused else contextlib.nullcontext()
        model.train()
        saved_at = last_ckpt if resume_from is not None else None
        with fused:
            for step in range(start_step, total_steps):
                t0 = time.perf_counter()
                indices = batch_indices(step, batch_size=config.batch_size, n_examples=len(encoded), seed=config.seed, shuffle=config.shuffle)
                n_answer = answer_token_count(encoded, indices)
                optimizer.zero_grad(set_to_none=True)
                step_loss = torch.zeros((), dtype=torch.float64, device=device)
                tokens = 0
                for micro in shard(indices, rank=info.rank, world_size=info.world_size, grad_accum_steps=config.grad_accum_steps):
                    batch = collate([encoded[i] for i in micro], pad_id=pad_id, padding_side=config.padding_side).to(device)
                    with autocast:
                        loss = answer_loss_sum(model, batch) / n_answer
                        total = loss
                        if extra_loss is not None:
                            total = loss + extra_loss(model, batch) * (len(micro) / config.batch_size)
                    total.backward()
                    step_loss += loss.detach()
                    tokens += batch.n_tokens
                dist_utils.all_reduce_gradients(params, info)
                loss_value = dist_utils.all_reduce_sum(float(step_loss), info, device)
                tokens = int(dist_utils.all_reduce_sum(float(tokens), info, device))
                if not math.isfinite(loss_value):
                    raise NonFiniteLossError(step + 1, loss_value, last_ckpt)
                max_norm = config.max_grad_norm if config.max_grad_norm is not None else float("inf")
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, max_norm))
                if not math.isfinite(grad_norm):
                    raise NonFiniteLossError(step + 1, grad_norm, last_ckpt, what="gradient norm")
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                done = step + 1
                tokens_seen += tokens
                loss_curve.append(loss_value)
                lr_curve.append(lr)
                tok_s = tokens / max(time.perf_counter() - t0, 1e-9)
                progress.update(loss=loss_value, tokens_per_s=tok_s)
                if done % config.log_every == 0 or done == total_steps:
                    metrics.log({"step": done, "loss": loss_value, "lr": lr, "grad_norm": grad_norm, "tokens": tokens, "tokens_per_s": tok_s})
                if config.eval_every and done % config.eval_every == 0 and done != total_steps:
                    evaluate_now(done)
                if out_dir is not None and config.save_every and done % config.save_every == 0 and done != total_steps:
                    if info.is_main:
                        last_ckpt = saved_at = save(done)
                    dist_utils.barrier(info)
            if start_step < total_steps:
                evaluate_now(total_steps)
        if out_dir is not None and info.is_main and (saved_at is None or saved_at != ckpt_io.checkpoint_dir(out_dir, total_steps)):
            last_ckpt = save(total_steps)
        dist_utils.barrier(info)
        return TrainResult(
            loss_curve=loss_curve, eval_curve=eval_curve, final_checkpoint=last_ckpt if out_dir else None,
            steps=total_steps, tokens_seen=tokens_seen, lr_curve=lr_curve,
        )
    finally:
        if progress is not None:
            progress.close()
        if metrics is not None:
            metrics.close()
        merge_lora(model)
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad.get(name, p.requires_grad))
        model.train(was_training)
        dist_utils.teardown(info)
