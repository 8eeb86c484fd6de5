"""Data parallelism on plain ``torch.distributed``: what :func:`rhlens.train` needs and no more.

Launch the same script with ``torchrun --nproc_per_node N script.py`` (or ``accelerate launch``):
the launcher sets ``RANK``/``WORLD_SIZE``/``MASTER_ADDR``; :func:`setup` then joins the process
group (``gloo`` on CPU, ``nccl`` on CUDA). Each process runs its share of every global batch;
gradients are summed over processes with one all-reduce per optimizer step (the loss is already
divided by the global batch's answer-token count, so the sum is the global mean's gradient), and
only rank 0 writes checkpoints and logs.
"""

import os
from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits. ``world_size == 1`` means a plain single-process run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device_type: str = "cpu") -> DistInfo:
    """Join (or reuse) the default process group when launched with several processes."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_available():  # pragma: no cover
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)), initialized_here=True)


def teardown(info: DistInfo) -> None:
    """Leave the process group if :func:`setup` created it."""
    if info.initialized_here and dist.is_initialized():
        dist.destroy_process_group()


def broadcast_parameters(params: Iterable[torch.Tensor], info: DistInfo) -> None:
    """Copy rank 0's values of ``params`` to every process."""
    if not info.enabled:
        return
    with torch.no_grad():
        for p in params:
            dist.broadcast(p.data, src=0)


def all_reduce_gradients(params: list[torch.Tensor], info: DistInfo) -> None:
    """Sum ``.grad`` of ``params`` over processes, in one flat buffer (missing grads count as 0)."""
    if not info.enabled or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset : offset + n].view_as(p).clone()
        offset += n


def all_reduce_sum(value: float, info: DistInfo, device: Any = "cpu") -> float:
    """Sum a Python float over processes."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()
