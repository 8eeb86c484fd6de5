"""Atomic training checkpoints: safetensors and JSON only, never pickle.

A checkpoint is a directory ``{out_dir}/checkpoints/step-{step:08d}/``::

    model/                                            rhlens.save_model folder (LoRA merged):
                                                      rhlens.load_model(path / "model") loads it
    trainer/state.json                                step, data position, config, curves, RNG scalars
    trainer/optimizer.safetensors + optimizer.json    AdamW tensors / param groups and scalars
    trainer/scheduler.json                            LR scheduler state
    trainer/rng.safetensors                           torch CPU/CUDA and numpy generator states
    trainer/lora.safetensors                          LoRA runs: adapters and unadapted base weights

    checksums.json                                    SHA-256 of every file above (written last)

Everything is written into a hidden ``.tmp-step-...`` directory beside it, flushed to disk, then
renamed into place, so a run killed mid-write leaves the previous checkpoint as the newest
complete one (:func:`latest_checkpoint` never returns a half-written directory). A resume checks
the checksums (:func:`checkpoint_problem`) and falls back to the newest intact checkpoint, saying
which ones it skipped and why (:func:`resumable_checkpoint`).

The run folder's identity record (``rhlens_run.json``) is :mod:`rhlens.training.run_folder`'s.
"""

import contextlib
import hashlib
import json
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors.torch import load_file, save_file

from rhlens.adapter.core import Model
from rhlens.adapter.native import model_state, set_model_state
from rhlens.files import respect_umask, reraise_naming, write_json_atomic
from rhlens.training.trainer_state import jsonable, join_optimizer_state, rng_state, set_rng_state, split_optimizer_state

FORMAT = "rhlens-train-checkpoint"
FORMAT_VERSION = 2  # 2: checksums.json and run_id; version-1 checkpoints are still read
STEP_PREFIX = "step-"
CHECKSUM_FILE = "checksums.json"


class DamagedCheckpointError(ValueError):
    """No intact checkpoint to resume from; the message names every damaged file."""


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
    respect_umask(path)


# ---- model files --------------------------------------------------------------------------------
MODEL_SUBDIR = "model"
DERIVED_SUFFIXES = (".rotary_sin", ".rotary_cos", ".mask", ".IGNORE")


@contextlib.contextmanager
def _state_dict_as(model: Model, state: dict[str, torch.Tensor]) -> Iterator[Any]:
    """Make ``model.state_dict()`` return ``state`` inside the block (LoRA-merged weights).

    Lets :func:`rhlens.models.save_model` write the merged weights of a model whose attention is
    still LoRA-parametrized, without copying the model or touching its parameters.
    """
    model.state_dict = lambda *args, **kwargs: state  # instance attribute shadows the method
    try:
        yield model
    finally:
        del model.state_dict


def save_model_files(directory: Path, model: Model, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (with ``state_dict`` as its weights, if given) with :func:`rhlens.models.save_model`."""
    from rhlens.models.io import save_model

    if state_dict is None:
        return save_model(model, directory)
    with _state_dict_as(model, state_dict):
        return save_model(model, directory)


def load_model_weights(directory: Path, model: Model) -> None:
    """Copy the weights of a :func:`rhlens.models.save_model` folder into ``model`` (same architecture)."""
    from rhlens.models.io import WEIGHTS_FILE

    path = Path(directory) / WEIGHTS_FILE
    state = load_file(str(path), device=str(next(model.parameters()).device))
    own = model_state(model)  # TransformerLens keys on either model class
    missing = [k for k in own if k not in state and not k.endswith(DERIVED_SUFFIXES)]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(v.shape)} in the checkpoint, {tuple(own[k].shape)} in the model"
        for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:  # checked before any tensor is copied: the model stays untouched
        raise ValueError(
            f"{path}: weights do not fit the model (missing {missing[:5]}, unexpected {unexpected[:5]}, "
            f"{len(shapes)} shape mismatch(es){': ' + '; '.join(shapes[:5]) if shapes else ''}); the model was "
            "left unchanged. Resume with the same architecture the run started from."
        )
    set_model_state(model, state)


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
    return Path(out_dir) / "checkpoints" / f"{STEP_PREFIX}{step:08d}"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE)


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

    ``state`` is the JSON-ready trainer state (step, data position, config, curves, ``run_id``);
    RNG states are added here, and ``checksums.json`` (SHA-256 of every file) is written last. An
    existing checkpoint of the same step is replaced with a warning when it belongs to the same
    run (or is damaged); one of another run (a different ``run_id``) raises ``FileExistsError``.
    When a write fails (a full disk), the temporary folder is removed and the ``OSError`` names the
    checkpoint (:func:`rhlens.files.reraise_naming`).
    """
    final = checkpoint_dir(out_dir, step)
    if final.exists():
        _check_replaceable(final, state.get("run_id"))
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        _write_checkpoint(tmp, final, step=step, model=model, model_state=model_state, optimizer=optimizer,
                          scheduler=scheduler, state=state, lora_state=lora_state)
    except BaseException as exc:  # a full disk, an interrupt: remove what this save wrote, name the checkpoint
        shutil.rmtree(tmp, ignore_errors=True)
        kept = "; the earlier checkpoints are intact (resume=True goes on from the newest)"
        reraise_naming(exc, final, "the checkpoint", kept=kept)
    _fsync_dir(final.parent)
    return final


def _write_checkpoint(tmp: Path, final: Path, *, step: int, model: Any, model_state: dict[str, torch.Tensor],
                      optimizer: torch.optim.Optimizer, scheduler: Any, state: dict[str, Any],
                      lora_state: dict[str, torch.Tensor] | None) -> None:
    """Write the checkpoint into ``tmp``, flush it, and rename it onto ``final``."""
    trainer = tmp / "trainer"
    trainer.mkdir(parents=True)
    save_model_files(tmp / MODEL_SUBDIR, model, model_state)
    opt_tensors, opt_rest = split_optimizer_state(optimizer.state_dict())
    _save_tensors(trainer / "optimizer.safetensors", opt_tensors)
    write_json(trainer / "optimizer.json", opt_rest)
    sched = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    write_json(trainer / "scheduler.json", jsonable(sched))
    rng_tensors, rng_meta = rng_state()
    _save_tensors(trainer / "rng.safetensors", rng_tensors)
    if lora_state is not None:
        _save_tensors(trainer / "lora.safetensors", lora_state)
    full_state = {"format": FORMAT, "version": FORMAT_VERSION, **state, "step": step, "rng": rng_meta, "lora": lora_state is not None}
    write_json(trainer / "state.json", full_state)  # its presence marks completeness
    write_json(tmp / CHECKSUM_FILE, {"sha256": {p.relative_to(tmp).as_posix(): _sha256(p) for p in _files(tmp)}})
    for path in (tmp, trainer):
        _fsync_dir(path)
    if final.exists():
        old = final.parent / f".old-{final.name}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _check_replaceable(final: Path, run: str | None) -> None:
    try:
        old = json.loads((final / "trainer" / "state.json").read_text())
        old_run = old.get("run_id")
    except (OSError, ValueError, AttributeError):
        warnings.warn(f"replacing the damaged checkpoint {final}", stacklevel=3)
        return
    if old_run is not None and old_run != run:
        raise FileExistsError(
            f"{final} is a checkpoint of another run (run_id {old_run}, this run is {run}); refusing to replace it. "
            "Move it away or train into a new out_dir."
        )
    problem = checkpoint_problem(Checkpoint(final, old)) if isinstance(old.get("step"), int) else "no step"
    what = f"the damaged checkpoint {final} ({problem})" if problem else f"the earlier checkpoint {final} of this run"
    warnings.warn(f"replacing {what} (same step)", stacklevel=3)


def _folder_step(path: Path) -> int | None:
    try:
        return int(path.name[len(STEP_PREFIX):])
    except ValueError:
        return None


def list_checkpoints(out_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints in ``out_dir``, oldest first by folder name (half-written ones are skipped)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.name.startswith(STEP_PREFIX) or not path.is_dir() or _folder_step(path) is None:
            continue
        state_path = path / "trainer" / "state.json"
        try:
            state = json.loads(state_path.read_text())
            int(state["step"])
        except (OSError, ValueError, KeyError, TypeError):
            warnings.warn(f"skipping incomplete checkpoint {path}", stacklevel=2)
            continue
        found.append(Checkpoint(path, state))
    return sorted(found, key=lambda c: _folder_step(c.path))


def latest_checkpoint(out_dir: Path) -> Checkpoint | None:
    """The newest complete checkpoint in ``out_dir``, or ``None`` (not verified: see
    :func:`resumable_checkpoint`)."""
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def checkpoint_problem(ckpt: Checkpoint) -> str | None:
    """Why ``ckpt`` cannot be resumed from (a changed, missing or truncated file), or ``None``.

    Format-2 checkpoints are checked against ``checksums.json``; older ones only for files that
    cannot be read (truncated safetensors, broken JSON).
    """
    if ckpt.step != _folder_step(ckpt.path):
        return f"trainer/state.json says step {ckpt.step} but the folder is {ckpt.path.name}"
    sums_path = ckpt.path / CHECKSUM_FILE
    if int(ckpt.state.get("version", 1)) >= 2 or sums_path.exists():
        try:
            sums = json.loads(sums_path.read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as err:
            return f"{CHECKSUM_FILE} is missing or damaged ({type(err).__name__}: {err})"
        for rel, digest in sorted(sums.items()):
            path = ckpt.path / rel
            if not path.is_file():
                return f"{rel} is missing"
            if _sha256(path) != digest:
                return f"{rel} does not match its checksum (edited, truncated or corrupted)"
        return None
    from safetensors import safe_open

    for path in _files(ckpt.path):
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as fh:
                    for key in fh.keys():
                        fh.get_tensor(key)
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except Exception as err:  # noqa: BLE001 - any read failure makes the checkpoint unusable
            return f"{path.relative_to(ckpt.path)} cannot be read ({type(err).__name__}: {err})"
    return None


def resumable_checkpoint(out_dir: Path, run: str | None = None) -> Checkpoint | None:
    """The newest intact checkpoint of run ``run`` in ``out_dir`` (``None`` when there is none).

    Damaged newer checkpoints are skipped with a warning naming each file and the step resumed
    from; they are replaced when the run reaches their step again. Checkpoints of another run are
    skipped with a warning.

    Raises:
        DamagedCheckpointError: checkpoints exist but none is intact (every problem is named).
    """
    damaged = []
    for ckpt in reversed(list_checkpoints(out_dir)):
        owner = ckpt.state.get("run_id")
        if run is not None and owner is not None and owner != run:
            warnings.warn(f"skipping {ckpt.path}: it belongs to another run (run_id {owner})", stacklevel=2)
            continue
        problem = checkpoint_problem(ckpt)
        if problem is None:
            if damaged:
                warnings.warn(
                    f"resuming from {ckpt.path} (step {ckpt.step}), the newest intact checkpoint; skipped damaged "
                    f"newer checkpoint(s): {'; '.join(damaged)}",
                    stacklevel=2,
                )
            return ckpt
        damaged.append(f"{ckpt.path}: {problem}")
    if damaged:
        raise DamagedCheckpointError(
            f"no intact checkpoint to resume from in {out_dir}: {'; '.join(damaged)}. Restore the files from a "
            "backup, or start the run again with overwrite=True."
        )
    return None


def prune_checkpoints(out_dir: Path, keep_last: int | None, run: str | None = None) -> None:
    """Delete all but the ``keep_last`` newest complete checkpoints of run ``run`` (and stale temp dirs).

    Only checkpoints whose ``state.json`` carries ``run_id == run`` are deleted (all complete ones
    when ``run`` is ``None``); another run's checkpoints are never touched.
    """
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return
    for stale in root.glob(".tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    if keep_last is None:
        return
    mine = [c for c in list_checkpoints(out_dir) if run is None or c.state.get("run_id") == run]
    for ckpt in mine[:-keep_last]:
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
