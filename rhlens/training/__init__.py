"""The thin trainer: answer-only fine-tuning, LoRA, exact resume, data parallel, context extension.

Modules, one job each:

- :mod:`rhlens.training.config`: :class:`TrainConfig` (TOML/JSON loadable).
- :mod:`rhlens.training.data`: encoding, data order, answer-only batches.
- :mod:`rhlens.training.loss`: the answer-token loss.
- :mod:`rhlens.training.lora`: LoRA adapters on W_Q/W_K/W_V/W_O, merged for analysis.
- :mod:`rhlens.training.optim`: AdamW and the warm-up + cosine schedule.
- :mod:`rhlens.training.checkpoint`: atomic safetensors/JSON checkpoints and resume.
- :mod:`rhlens.training.trainer_state`: optimizer and RNG state as tensors + JSON.
- :mod:`rhlens.training.run_folder`: whose run an ``out_dir`` holds (start, resume or replace).
- :mod:`rhlens.training.distributed`: ``torchrun``/``accelerate launch`` data parallelism.
- :mod:`rhlens.training.run_log`: JSONL log, tqdm bar, optional wandb.
- :mod:`rhlens.training.resume`: what makes a resumed run the same run (config, steps, data).
- :mod:`rhlens.training.setup`: a run's plan and start (data, identity, optimizer, logs).
- :mod:`rhlens.training.loop`: :func:`train` and its steps.
- :mod:`rhlens.training.context_length`: :func:`extend_context`.

:func:`train` is public as ``rhlens.train``. Names load lazily, so the trainer's options
(:data:`rhlens.training.config.TRAINABLE`) can be read without loading torch.
"""


from rhlens._lazy import lazy_exports as _lazy_exports

_EXPORTS: dict[str, str] = {
    "NonFiniteLossError": "rhlens.training.loop",
    "TrainConfig": "rhlens.training.config",
    "TrainResult": "rhlens.training.loop",
    "apply_lora": "rhlens.training.lora",
    "extend_context": "rhlens.training.context_length",
    "latest_checkpoint": "rhlens.training.checkpoint",
    "list_checkpoints": "rhlens.training.checkpoint",
    "merge_lora": "rhlens.training.lora",
    "train": "rhlens.training.loop",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
