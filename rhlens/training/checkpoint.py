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

The run folder also holds ``rhlens_run.json``: the run's identity (model architecture, the config
keys that shape the trajectory, step count and a fingerprint of the training tokens) and its hash
``run_id``. :func:`check_out_dir` refuses to start a run in a folder that holds another run (or this
run, unless resuming), so no run deletes, prunes or replaces another run's metrics or checkpoints.
"""

import contextlib
import hashlib
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

from rhlens.adapter.core import HookedTransformer
from rhlens.files import write_json_atomic
from rhlens.training.metrics import METRICS_FILE

FORMAT = "rhlens-train-checkpoint"
FORMAT_VERSION = 2  # 2: checksums.json and run_id; version-1 checkpoints are still read
_PREFIX = "step-"
CHECKSUM_FILE = "checksums.json"
RUN_FILE = "rhlens_run.json"
RUN_FORMAT = "rhlens-train-run"


class RunFolderError(ValueError):
    """``out_dir`` holds another training run (or this one, without ``resume``); nothing was touched."""


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


# ---- model files --------------------------------------------------------------------------------
MODEL_SUBDIR = "model"
_DERIVED = (".rotary_sin", ".rotary_cos", ".mask", ".IGNORE")


@contextlib.contextmanager
def _state_dict_as(model: HookedTransformer, state: dict[str, torch.Tensor]) -> Iterator[Any]:
    """Make ``model.state_dict()`` return ``state`` inside the block (LoRA-merged weights).

    Lets :func:`rhlens.models.save_model` write the merged weights of a model whose attention is
    still LoRA-parametrized, without copying the model or touching its parameters.
    """
    model.state_dict = lambda *args, **kwargs: state  # instance attribute shadows the method
    try:
        yield model
    finally:
        del model.state_dict


def save_model_files(directory: Path, model: HookedTransformer, state_dict: dict[str, torch.Tensor] | None = None) -> Path:
    """Write ``model`` (with ``state_dict`` as its weights, if given) with :func:`rhlens.models.save_model`."""
    from rhlens.models.io import save_model

    if state_dict is None:
        return save_model(model, directory)
    with _state_dict_as(model, state_dict):
        return save_model(model, directory)


def load_model_weights(directory: Path, model: HookedTransformer) -> None:
    """Copy the weights of a :func:`rhlens.models.save_model` folder into ``model`` (same architecture)."""
    from rhlens.models.io import WEIGHTS_FILE

    path = Path(directory) / WEIGHTS_FILE
    state = load_file(str(path), device=str(next(model.parameters()).device))
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith(_DERIVED)]
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
    model.load_state_dict(state, strict=False)


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


# ---- run identity -------------------------------------------------------------------------------
def run_identity(model: HookedTransformer, config: dict[str, Any], *, total_steps: int, data_fingerprint: str) -> dict[str, Any]:
    """What makes two runs the same run: the model's architecture and parameter shapes, the
    trajectory-shaping ``config`` entries, the step count and the training tokens' fingerprint."""
    from rhlens.adapter import architecture

    cfg = model.cfg
    arch = {k: v for k, v in architecture(model).to_dict().items() if k != "kind"}
    arch.update(d_mlp=getattr(cfg, "d_mlp", None), rotary_base=getattr(cfg, "rotary_base", None))
    shapes = hashlib.sha256(
        json.dumps({k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith(_DERIVED)}, sort_keys=True).encode()
    ).hexdigest()[:16]
    return {
        "model": {**arch, "parameter_shapes": shapes},
        "config": _jsonable(dict(config)),
        "total_steps": int(total_steps),
        "data_fingerprint": data_fingerprint,
    }


def run_id(identity: dict[str, Any]) -> str:
    """A short stable hash of :func:`run_identity`'s dict."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def identity_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"field: saved -> current"`` for every field of two identities that differs."""
    a, b = _flatten(saved), _flatten(current)
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}" for k in sorted(set(a) | set(b)) if a.get(k, "<unset>") != b.get(k, "<unset>")]


def _run_contents(out_dir: Path) -> list[str]:
    """What in ``out_dir`` belongs to a training run: the record, checkpoints, the metrics log."""
    out = []
    if (out_dir / RUN_FILE).exists():
        out.append(RUN_FILE)
    root = out_dir / "checkpoints"
    if root.is_dir():
        n = sum(1 for p in root.iterdir() if p.name.startswith(_PREFIX))
        if n:
            out.append(f"{n} checkpoint(s)")
    if (out_dir / METRICS_FILE).exists():
        out.append(METRICS_FILE)
    return out


def check_out_dir(out_dir: Path, identity: dict[str, Any], *, resume: bool, overwrite: bool) -> str:
    """Decide what to do with ``out_dir``: ``"new"``, ``"resume"`` or ``"replace"``; reads only.

    A folder that holds a run is resumed when ``resume`` and the run is this one (same
    :func:`run_identity`; a folder from before run records is checked against its checkpoints
    later), replaced when ``overwrite`` (:func:`claim_out_dir` then removes that run's checkpoints
    and log), and refused otherwise. ``resume`` and ``overwrite`` together: resume this run, or
    replace any other.

    Raises:
        RunFolderError: naming the folder, what it holds, the differing fields and the fix.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise RunFolderError(f"out_dir {out_dir} is a file, not a folder; choose a folder path")
    contents = _run_contents(out_dir) if out_dir.is_dir() else []
    if not contents:
        return "new"
    try:
        saved = _saved_identity(out_dir)
    except RunFolderError:
        if overwrite:
            return "replace"
        raise
    diffs = identity_differences(saved, identity) if saved is not None else []
    if resume and not diffs:
        return "resume"
    if overwrite:
        return "replace"
    holds = ", ".join(contents)
    fix = "Pass overwrite=True (TrainConfig.overwrite) to replace that run, or choose a new out_dir."
    if diffs:
        raise RunFolderError(
            f"out_dir {out_dir} holds another training run ({holds}); it differs from this one in: "
            f"{'; '.join(diffs)}. {fix}"
        )
    raise RunFolderError(
        f"out_dir {out_dir} already holds {'this' if saved is not None else 'a'} training run ({holds}). "
        f"Pass resume=True to continue it. {fix}"
    )


def _saved_identity(out_dir: Path) -> dict[str, Any] | None:
    """The identity recorded in ``out_dir`` (its run record, else its newest checkpoint), or ``None``."""
    record_path = out_dir / RUN_FILE
    if record_path.exists():
        try:
            record = json.loads(record_path.read_text(encoding="utf-8"))
            saved = record["identity"]
            if record.get("format") != RUN_FORMAT or not isinstance(saved, dict):
                raise ValueError("not an rhlens run record")
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise RunFolderError(
                f"{record_path} is damaged ({err}); out_dir {out_dir} holds a run rhlens cannot identify. "
                "Pass overwrite=True to replace it, or choose a new out_dir."
            ) from None
        return saved
    for ckpt in reversed(list_checkpoints(out_dir)):  # no record: the checkpoints say whose they are
        if isinstance(ckpt.state.get("run_identity"), dict):
            return ckpt.state["run_identity"]
    return None


def claim_out_dir(out_dir: Path, identity: dict[str, Any], *, replace: bool) -> str:
    """Record this run in ``out_dir`` (after :func:`check_out_dir`); returns its ``run_id``.

    With ``replace`` the previous run's checkpoints and metrics log are removed first; other
    files in the folder are left alone.
    """
    out_dir = Path(out_dir)
    if replace:
        root = out_dir / "checkpoints"
        if root.is_dir():
            for path in root.iterdir():
                if path.name.startswith((_PREFIX, ".tmp-", ".old-")) and path.is_dir():
                    shutil.rmtree(path)
        (out_dir / METRICS_FILE).unlink(missing_ok=True)
    rid = run_id(identity)
    write_json(out_dir / RUN_FILE, {"format": RUN_FORMAT, "version": 1, "run_id": rid, "identity": identity})
    return rid


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
    """
    final = checkpoint_dir(out_dir, step)
    if final.exists():
        _check_replaceable(final, state.get("run_id"))
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
    _fsync_dir(final.parent)
    return final


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
        return int(path.name[len(_PREFIX):])
    except ValueError:
        return None


def list_checkpoints(out_dir: Path) -> list[Checkpoint]:
    """Complete checkpoints in ``out_dir``, oldest first by folder name (half-written ones are skipped)."""
    root = Path(out_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        if not path.name.startswith(_PREFIX) or not path.is_dir() or _folder_step(path) is None:
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
