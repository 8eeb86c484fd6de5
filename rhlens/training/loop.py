"""``train``: the training loop (set up by :mod:`rhlens.training.setup`).

Example: :func:`train`.

Per optimizer step: take global batch ``step`` of the fixed data order, split it into this
process's micro-batches, sum the answer-token cross-entropy of each micro-batch divided by the
global batch's answer-token count, backpropagate, sum gradients over processes, stop on a non-finite
loss, clip, step AdamW and the schedule; then log, evaluate and checkpoint when due.
"""

import contextlib
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.adapter.core import Model, model_device, model_kind
from rhlens.adapter.fused import fused_attention
from rhlens.encoding import EncodedExample
from rhlens.files import hold_lock
from rhlens.training import checkpoint as ckpt_io
from rhlens.training import distributed as dist_utils
from rhlens.training.config import TrainConfig
from rhlens.training.data import answer_token_count, batch_indices, collate, shard
from rhlens.training.lora import has_lora, lora_state_dict, merge_lora, merged_state_dict
from rhlens.training.loss import answer_loss_sum, heldout_answer_loss
from rhlens.training.setup import TrainingRun, plan_run, start_run


class NonFiniteLossError(FloatingPointError):
    """The loss (or gradient norm) became NaN or infinite; the weights were not updated.

    A ``FloatingPointError`` carrying ``step``, ``value`` and ``last_checkpoint`` (resume from it
    with a lower ``TrainConfig.lr``).

    >>> err = NonFiniteLossError(step=3, value=float("nan"), last_checkpoint=None)
    >>> isinstance(err, FloatingPointError), err.step
    (True, 3)
    >>> print(err)
    loss is nan at step 3; training stopped before updating the weights (no checkpoint was written yet). Lower TrainConfig.lr, raise warmup_steps, or check the examples of that step.
    """

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

    >>> import rhlens
    >>> examples = rhlens.generate("kv", "symbolic", n=8, context_tokens=48, key_chunks=1, value_chunks=1)
    >>> model = rhlens.tiny_llama(tokenizer=rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples]))
    >>> config = TrainConfig(steps=3, batch_size=4, lr=1e-3, warmup_steps=1, progress=False)
    >>> result = train(model, examples, config, eval_examples=examples[:2])
    >>> result.steps, len(result.loss_curve), [round(lr, 6) for lr in result.lr_curve]
    (3, 3, [0.001, 0.001, 0.0005])
    >>> sorted(result.eval_curve[-1]), result.tokens_seen > 0
    (['eval_loss', 'step'], True)
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


def _eval_batches(encoded: list[EncodedExample], config: TrainConfig, pad_id: int, device: torch.device):
    size = config.eval_batch_size
    return [
        collate(encoded[i : i + size], pad_id=pad_id, padding_side=config.padding_side).to(device)
        for i in range(0, len(encoded), size)
    ]


def _evaluation_record(run: TrainingRun) -> dict[str, float]:
    """``eval_fn``'s value, the task score or the held-out answer loss (in eval mode, no grad)."""
    config, model = run.config, run.model
    if run.eval_fn is not None:
        value = run.eval_fn(model)
        return dict(value) if isinstance(value, dict) else {"eval": float(value)}
    if config.eval_metric == "task":
        try:
            from rhlens.evaluation import evaluate
        except ImportError as err:
            raise ImportError("TrainConfig.eval_metric='task' needs rhlens.evaluation") from err
        result = evaluate(
            model, run.eval_examples, batch_size=config.eval_batch_size,
            max_new_tokens=config.eval_max_new_tokens, progress=False,
        )
        return {"eval_score": float(result.score)}
    return {"eval_loss": heldout_answer_loss(model, _eval_batches(run.eval_encoded, config, run.pad_id, run.device))}


def _evaluate(run: TrainingRun, step: int) -> None:
    if not run.info.is_main or (run.eval_fn is None and run.eval_encoded is None):
        return
    run.model.eval()
    try:
        with torch.no_grad():
            record = _evaluation_record(run)
    finally:
        run.model.train()
    record = {"step": step, **record}
    run.eval_curve.append(record)
    run.metrics.log(record)


def _save(run: TrainingRun, step: int) -> Path:
    """Write checkpoint ``step`` (main process) and prune old ones; returns its folder."""
    model, config = run.model, run.config
    state = {
        "examples_seen": step * config.batch_size,
        "total_steps": run.total_steps,
        "world_size": run.info.world_size,
        "config": config.to_dict(),
        "data_fingerprint": run.fingerprint,
        "run_id": run.run_id,
        "run_identity": run.identity,
        "n_examples": len(run.encoded),
        "loss_curve": run.loss_curve,
        "lr_curve": run.lr_curve,
        "eval_curve": run.eval_curve,
        "tokens_seen": run.tokens_seen,
    }
    path = ckpt_io.save_checkpoint(
        run.out_dir, step=step, model=model, model_state=merged_state_dict(model), optimizer=run.optimizer,
        scheduler=run.scheduler, state=state, lora_state=lora_state_dict(model) if has_lora(model) else None,
    )
    ckpt_io.prune_checkpoints(run.out_dir, config.keep_last, run.run_id)
    return path


def _step(run: TrainingRun, step: int, autocast: Any) -> tuple[float, float, float, int]:
    """One optimizer step; returns ``(loss, grad_norm, lr, tokens)`` summed over processes."""
    config, info, device = run.config, run.info, run.device
    indices = batch_indices(step, batch_size=config.batch_size, n_examples=len(run.encoded), seed=config.seed, shuffle=config.shuffle)
    n_answer = answer_token_count(run.encoded, indices)
    run.optimizer.zero_grad(set_to_none=True)
    step_loss = torch.zeros((), dtype=torch.float64, device=device)
    tokens = 0
    for micro in shard(indices, rank=info.rank, world_size=info.world_size, grad_accum_steps=config.grad_accum_steps):
        batch = collate([run.encoded[i] for i in micro], pad_id=run.pad_id, padding_side=config.padding_side).to(device)
        with autocast:
            loss = answer_loss_sum(run.model, batch) / n_answer
            total = loss
            if run.extra_loss is not None:
                total = loss + run.extra_loss(run.model, batch) * (len(micro) / config.batch_size)
        total.backward()
        step_loss += loss.detach()
        tokens += batch.n_tokens
    dist_utils.all_reduce_gradients(run.params, info)
    loss_value = dist_utils.all_reduce_sum(float(step_loss), info, device)
    tokens = int(dist_utils.all_reduce_sum(float(tokens), info, device))
    if not math.isfinite(loss_value):
        raise NonFiniteLossError(step + 1, loss_value, run.last_ckpt)
    max_norm = config.max_grad_norm if config.max_grad_norm is not None else float("inf")
    grad_norm = float(torch.nn.utils.clip_grad_norm_(run.params, max_norm))
    if not math.isfinite(grad_norm):
        raise NonFiniteLossError(step + 1, grad_norm, run.last_ckpt, what="gradient norm")
    lr = run.optimizer.param_groups[0]["lr"]
    run.optimizer.step()
    run.scheduler.step()
    return loss_value, grad_norm, lr, tokens


def _run_steps(run: TrainingRun) -> None:
    """Every step from ``run.start_step``, logging, evaluating and checkpointing when due."""
    config, total_steps = run.config, run.total_steps
    autocast = (
        torch.autocast(run.device.type, dtype=torch.bfloat16 if config.autocast == "bf16" else torch.float16)
        if config.autocast else contextlib.nullcontext()
    )
    run.model.train()
    with fused_attention(run.model) if run.use_fused else contextlib.nullcontext():
        for step in range(run.start_step, total_steps):
            t0 = time.perf_counter()
            loss_value, grad_norm, lr, tokens = _step(run, step, autocast)
            done = step + 1
            run.tokens_seen += tokens
            run.loss_curve.append(loss_value)
            run.lr_curve.append(lr)
            tok_s = tokens / max(time.perf_counter() - t0, 1e-9)
            run.progress.update(loss=loss_value, tokens_per_s=tok_s)
            if done % config.log_every == 0 or done == total_steps:
                run.metrics.log({"step": done, "loss": loss_value, "lr": lr, "grad_norm": grad_norm, "tokens": tokens, "tokens_per_s": tok_s})
            if config.eval_every and done % config.eval_every == 0 and done != total_steps:
                _evaluate(run, done)
            if run.out_dir is not None and config.save_every and done % config.save_every == 0 and done != total_steps:
                if run.info.is_main:
                    run.last_ckpt = _save(run, done)
                dist_utils.barrier(run.info)
        if run.start_step < total_steps:
            _evaluate(run, total_steps)
    final = ckpt_io.checkpoint_dir(run.out_dir, total_steps) if run.out_dir is not None else None
    if run.out_dir is not None and run.info.is_main and (run.last_ckpt is None or run.last_ckpt != final):
        run.last_ckpt = _save(run, total_steps)
    dist_utils.barrier(run.info)


#: the lock file a run holds in its ``out_dir`` (:func:`rhlens.files.hold_lock`, as the study's)
LOCK_FILE = ".rhlens_train.lock"


def _folder_lock(out_dir: Path | None, is_main: bool) -> contextlib.AbstractContextManager[None]:
    """The main process's hold on ``out_dir`` for the run: a second run into it is refused."""
    if out_dir is None or not is_main:
        return contextlib.nullcontext()
    out_dir.mkdir(parents=True, exist_ok=True)
    return hold_lock(out_dir / LOCK_FILE, f"out_dir {out_dir}")


def train(
    model: Model,
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
            The run holds a lock on the folder (``.rhlens_train.lock``, the operating system's, so
            it goes with its process); a second run into the same folder meanwhile is refused.
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
        rhlens.training.run_folder.RunFolderError: ``out_dir`` holds another run (naming the
            differing fields), or this run while ``resume`` and ``overwrite`` are both off.
        rhlens.training.checkpoint.DamagedCheckpointError: resuming, and no checkpoint is intact
            (a damaged newest one is skipped with a warning; resume goes on from an older one).
        rhlens.files.FolderInUseError: another run is training into ``out_dir`` now (naming its
            process id, host and start time); nothing was written.
        NonFiniteLossError: the loss became NaN/inf (naming the step; the last checkpoint stays).

    >>> import rhlens
    >>> from rhlens.tasks import generate
    >>> examples = generate("kv", "symbolic", n=16, context_tokens=48, seed=0, key_chunks=1, value_chunks=1)
    >>> model = rhlens.tiny_llama(tokenizer=rhlens.word_level_tokenizer([e.prompt + e.completion for e in examples]))
    >>> result = train(model, examples, TrainConfig(steps=2, batch_size=8, progress=False))
    >>> len(result.loss_curve), result.steps, result.final_checkpoint
    (2, 2, None)
    """
    config = config or TrainConfig()
    model_kind(model)  # a HookedTransformer or a TransformerBridge, else UnsupportedModelError
    if out_dir is None and (config.save_every or config.resume):
        raise ValueError("TrainConfig.save_every / resume need an out_dir to write checkpoints to")
    out_dir = Path(out_dir) if out_dir is not None else None
    run, plan = plan_run(model, examples, config, out_dir, eval_examples=eval_examples, eval_fn=eval_fn, extra_loss=extra_loss)
    was_training = model.training
    requires_grad = {name: p.requires_grad for name, p in model.named_parameters()}
    run.info = dist_utils.setup(model_device(model).type if config.device is None else torch.device(config.device).type)
    try:
        with _folder_lock(out_dir, run.info.is_main):
            start_run(run, plan)
            _run_steps(run)
        return TrainResult(
            loss_curve=run.loss_curve, eval_curve=run.eval_curve, final_checkpoint=run.last_ckpt if out_dir else None,
            steps=run.total_steps, tokens_seen=run.tokens_seen, lr_curve=run.lr_curve,
        )
    finally:
        for log in (run.progress, run.metrics):
            if log is not None:
                log.close()
        merge_lora(model)
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad.get(name, p.requires_grad))
        model.train(was_training)
        dist_utils.teardown(run.info)
