"""Whose run a folder holds: the run's identity record and the decision to start, resume or replace.

The run folder also holds ``rhlens_run.json``: the run's identity (model architecture, the config
keys that shape the trajectory, step count and a fingerprint of the training tokens) and its hash
``run_id``. :func:`check_out_dir` refuses to start a run in a folder that holds another run (or this
run, unless resuming), so no run deletes, prunes or replaces another run's metrics or checkpoints.
"""

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from rhlens.adapter.core import Model, architecture
from rhlens.training.checkpoint import DERIVED_SUFFIXES, STEP_PREFIX, jsonable, list_checkpoints, write_json
from rhlens.training.run_log import METRICS_FILE

__all__ = ["RUN_FILE", "RunFolderError", "check_out_dir", "claim_out_dir", "identity_differences", "run_id", "run_identity"]

RUN_FILE = "rhlens_run.json"
RUN_FORMAT = "rhlens-train-run"


class RunFolderError(ValueError):
    """``out_dir`` holds another training run (or this one, without ``resume``); nothing was touched."""


def run_identity(model: Model, config: dict[str, Any], *, total_steps: int, data_fingerprint: str) -> dict[str, Any]:
    """What makes two runs the same run: the model's architecture and parameter shapes, the
    trajectory-shaping ``config`` entries, the step count and the training tokens' fingerprint."""
    cfg = model.cfg
    arch = {k: v for k, v in architecture(model).to_dict().items() if k != "kind"}
    arch.update(d_mlp=getattr(cfg, "d_mlp", None), rotary_base=getattr(cfg, "rotary_base", None))
    state = {k: v for k, v in model.state_dict().items() if not k.endswith(DERIVED_SUFFIXES)}
    shapes = hashlib.sha256(json.dumps({k: list(v.shape) for k, v in state.items()}, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "model": {**arch, "parameter_shapes": shapes, "weights": weights_fingerprint(state)},
        "config": jsonable(dict(config)),
        "total_steps": int(total_steps),
        "data_fingerprint": data_fingerprint,
    }


def weights_fingerprint(state: dict[str, Any], per_tensor: int = 4096) -> str:
    """A hash of the starting weights' values: up to ``per_tensor`` evenly strided values of each
    tensor (as float32), so another base of the same architecture (a swapped checkpoint) is another
    run, at a cost independent of the model's size."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name in sorted(state):
            flat = state[name].detach().reshape(-1)
            step = max(1, flat.numel() // per_tensor)
            h.update(name.encode())
            h.update(flat[::step][:per_tensor].to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()[:16]


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
        n = sum(1 for p in root.iterdir() if p.name.startswith(STEP_PREFIX))
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
                if path.name.startswith((STEP_PREFIX, ".tmp-", ".old-")) and path.is_dir():
                    shutil.rmtree(path)
        (out_dir / METRICS_FILE).unlink(missing_ok=True)
    rid = run_id(identity)
    write_json(out_dir / RUN_FILE, {"format": RUN_FORMAT, "version": 1, "run_id": rid, "identity": identity})
    return rid
