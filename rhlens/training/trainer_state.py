"""Optimizer and RNG state as safetensors tensors plus JSON scalars (no pickle), and back.

>>> import torch
>>> tensors, meta = rng_state()
>>> before = torch.rand(3)
>>> set_rng_state(tensors, meta)
>>> torch.equal(torch.rand(3), before)
True
"""

import random
from typing import Any

import numpy as np
import torch

__all__ = ["join_optimizer_state", "jsonable", "rng_state", "set_rng_state", "split_optimizer_state"]


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
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
                scalars.setdefault(str(pid), {})[name] = jsonable(value)
    return tensors, {"param_groups": jsonable(state["param_groups"]), "scalars": scalars}


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
