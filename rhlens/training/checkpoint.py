"""Atomic training checkpoints: safetensors and JSON only, never pickle.

A checkpoint is a directory ``{out_dir}/checkpoints/step-{step:08d}/``::

    model/                                            rhlens.save_model folder (LoRA merged):
                                                      rhlens.load_model(path / "model") loads it
    trainer/state.json                                step, data position, config, curves, RNG scalars
    trainer/optimizer.safetensors + optimizer.json    AdamW tensors / param groups and scalars
    trainer/scheduler.json                            LR scheduler state
    trainer/rng.safetensors                           torch CPU/CUDA and numpy generator states
    trainer/lora.safetensors                          LoRA runs: adapters and unadapted base weights

Everything is written into a hidden ``.tmp-step-...`` directory beside it, flushed to disk, then
renamed into place, so a run killed mid-write leaves the previous checkpoint as the newest
complete one (:func:`latest_checkpoint` never returns a half-written directory).
"""

import contextlib
import json
import os
import random
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from rhlens.files import write_json_atomic

FORMAT = "rhlens-train-checkpoint"
FORMAT_VERSION = 1
_PREFIX = "step-"


# ---- small atomic writers ----------------------------------------------------------------------
def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    write_json_atomic(path, data, indent=1)


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path))


# ---- model files --------------------------------------------------------------------------------
MODEL_SUBDIR = "model"
_DERIVED = (".rotary_sin", ".rotary_cos", ".mask", ".IGNORE")


@contextlib.contextmanager
def _state_dict_as(model: Any, state: dict[str, torch.Tensor]) -> Iterator[Any]:
    """Make ``model.state_dict()`` return ``state`` inside the block (LoRA-merged weights).

    Lets :func:`rhlens.models.save_model` write the merged weights of a model whose attention is
    still LoRA-parametrized, without copying the model or touching its parameters.
    """
    model.state_dict = lambda *args, **kwargs: state  # instance attribute shadows the method
    try:
        yield model
    finally:
        del model.state_dict


def save_model_files(directory: Path, model: Any, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (with ``state_dict`` as its weights, if given) with :func:`rhlens.models.save_model`."""
    from rhlens.models.io import save_model

    if state_dict is None:
        return save_model(model, directory)
    with _state_dict_as(model, state_dict):
        return save_model(model, directory)


def load_model_weights(directory: Path, model: Any) -> None:
    """Copy the weights of a :func:`rhlens.models.save_model` folder into ``model`` (same architecture)."""
    from rhlens.models.io import WEIGHTS_FILE

    path = Path(directory) / WEIGHTS_FILE
    state = load_file(str(path), device=str(next(model.parameters()).device))
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.endswith(_DERIVED)]
    if missing or result.unexpected_keys:
        raise ValueError(
            f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {result.unexpected_keys[:5]}); "
            "resume with the same architecture the run started from"
        )


# ---- optimizer / scheduler / RNG ----------------------------------------------------------------
def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return value.item()
    return value


def split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``optimizer.state_dict()`` -> (tensors by ``state.{param}.{name}``, the JSON-ready rest)."""
    tensors, scalars = {}, {}
    for pid, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{pid}.{name}"] = value
            else:
                scalars.setdefault(str(pid), {})[name] = _jsonable(value)
    return tensors, {"param_groups": _jsonable(state["param_groups"]), "scalars": scalars}


def join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, pid, name = key.split(".", 2)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in rest["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    groups = []
    for group in rest["param_groups"]:
        group = dict(group)
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
        groups.append(group)
    return {"state": state, "param_groups": groups}


def rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The torch (CPU, CUDA), python and numpy RNG states as (tensors, JSON-ready dict)."""
    tensors = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, st in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"torch_cuda.{i}"] = st
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    tensors["numpy_keys"] = torch.from_numpy(np.asarray(np_keys, dtype=np.int64))
    version, internal, gauss = random.getstate()
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": {"name": np_name, "pos": int(np_pos), "has_gauss": int(np_has_gauss), "cached_gaussian": float(np_gauss)},
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured (CUDA states only when the devices exist)."""
    torch.set_rng_state(tensors["torch_cpu"].to(torch.uint8))
    cuda = [tensors[k] for k in sorted(t for t in tensors if t.startswith("torch_cuda."))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([t.to(torch.uint8) for t in cuda])
    version, internal, gauss = meta["python"]
    random.setstate((version, tuple(internal), gauss))
    npm = meta["numpy"]
    keys = tensors["numpy_keys"].numpy().astype(np.uint32)
    np.random.set_state((npm["name"], keys, npm["pos"], npm["has_gauss"], npm["cached_gaussian"]))


# ---- checkpoints --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Checkpoint:
    """A complete checkpoint directory and its ``trainer/state.json``."""

    path: Path
    state: dict[str, Any]

    @property
    def step(self) -> int:
        return int(self.state["step"])


def checkpoint_dir(out_dir: Path, step: int) -> Path:
    return Path(out_dir) / "checkpoints" / f"{_PREFIX}{step:08d}"


def save_checkpoint(
    out_dir: Path,
    *,
    step: int,
    model: Any,
    model_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    state: dict[str, Any],
    lora_state: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write a checkpoint for ``step`` atomically and return its directory.

    ``state`` is the JSON-ready trainer state (step, data position, config, curves); RNG states
    are added here. An existing checkpoint of the same step is replaced.
    """
    final = checkpoint_dir(out_dir, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    trainer = tmp / "trainer"
    trainer.mkdir(parents=True)
    save_model_files(tmp / MODEL_SUBDIR, model, model_state)
    opt_tensors, opt_rest = split_optimizer_state(optimizer.state_dict())
    _save_tensors(trainer / "optimizer.safetensors", opt_tensors)
    write_json(trainer / "optimizer.json", opt_rest)
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    write_json(trainer / "scheduler.json", _jsonable(sched))
    rng_tensors, rng_meta = rng_state()
    _save_tensors(trainer / "rng.safetensors", rng_tensors)
    if lora_state is not None:
        _save_tensors(trainer / "lora.safetensors", lora_state)
    full_state = {"format": FORMAT, "version": FORMAT_VERSION, **state, "step": step, "rng": rng_meta, "lora": lora_state is not None}
    write_json(trainer / "state.json", full_state)  # written last: its presence marks completeness
    for path in (tmp, trainer):
        _fsync_dir(path)
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(final.parent)
    return final


def list_checkpoints(out_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints in ``out_dir``, oldest first (half-written ones are skipped)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.name.startswith(_PREFIX) or not path.is_dir():
            continue
        state_path = path / "trainer" / "state.json"
        try:
            state = json.loads(state_path.read_text())
        except (OSError, json.JSONDecodeError):
            warnings.warn(f"skipping incomplete checkpoint {path}", stacklevel=2)
            continue
        found.append(Checkpoint(path, state))
    return sorted(found, key=lambda c: c.step)


def latest_checkpoint(out_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint in ``out_dir``, or ``None``."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def prune_checkpoints(out_dir: Path, keep_last: int | None) -> None:
    """Delete all but the ``keep_last`` newest complete checkpoints (and stale temp dirs)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if keep_last is None:
        return
    for ckpt in list_checkpoints(out_dir)[:-keep_last]:
        shutil.rmtree(ckpt.path, ignore_errors=True)


def load_trainer_state(
    ckpt: Checkpoint, *, optimizer: torch.optim.Optimizer, scheduler: Any, restore_rng: bool = True
) -> dict[str, torch.Tensor] | None:
    """Restore optimizer, scheduler (and RNG) from ``ckpt``; returns the LoRA tensors if any."""
    trainer = ckpt.path / "trainer"
    tensors = load_file(str(trainer / "optimizer.safetensors"))
    rest = json.loads((trainer / "optimizer.json").read_text())
    optimizer.load_state_dict(join_optimizer_state(tensors, rest))
    sched = json.loads((trainer / "scheduler.json").read_text())
    scheduler.load_state_dict({**scheduler.state_dict(), **sched})
    if restore_rng:
        set_rng_state(load_file(str(trainer / "rng.safetensors")), ckpt.state["rng"])
    if ckpt.state.get("lora"):
        return load_file(str(trainer / "lora.safetensors"))
    return None
