"""Scoring, evaluation and sweeps across processes: examples sharded over ``torch.distributed`` ranks.

Launch one script on every process with ``torchrun --nproc_per_node N script.py``: each rank loads
the model (on its own GPU: ``device_for(info)``), runs the analyzer on its share of the examples
(``examples[rank::world_size]``), and rank 0 gets the result for all examples, in their order,
equal to one process's (up to float rounding from different batch compositions). Other ranks get
``None``. Results travel as safetensors bytes and JSON (no pickle), through ``all_gather``
(``gloo`` on CPU, ``nccl`` on GPUs: :func:`rhlens.training.distributed.setup`).

Any analyzer whose result is a dataclass with one entry per example along a fixed axis merges:
:func:`rhlens.evaluate` (:class:`~rhlens.evaluation.EvalResult`), :func:`rhlens.retrieval_scores`
(:class:`~rhlens.scoring.HeadScores`), :func:`rhlens.patch_sweep` and
:func:`rhlens.interventions.attribution_sweep` (:class:`~rhlens.interventions.PatchSweep`, examples
on the last axis of ``patched``, and ``dropped`` too for
:class:`~rhlens.interventions.AttributionSweep`). Per-example tensors and lists are put back in
example order, along axis 0 unless the result class says otherwise in its ``EXAMPLE_AXES``
(``{field: axis}``); every other field is rank 0's.

Script (a user scoring a large model on 1,000 long examples with every GPU)::

    import rhlens
    from rhlens.distributed_eval import device_for, run_sharded
    from rhlens.training.distributed import setup, teardown

    info = setup("cuda")
    model = rhlens.load_hf_checkpoint(path).to(device_for(info))
    scores = run_sharded(lambda shard: rhlens.retrieval_scores(model, shard, progress=False), examples, info)
    if info.is_main:
        scores.save("scores.json")
    teardown(info)

In one process (no launcher) :func:`run_sharded` just calls the function on all examples (see
its example).
"""

import dataclasses
import json
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist
from safetensors.torch import load as _st_load
from safetensors.torch import save as _st_save

from rhlens.training.distributed import DistInfo, setup

R = TypeVar("R")

def device_for(info: DistInfo) -> torch.device:
    """This rank's device: ``cuda:<local_rank>`` when CUDA is available (and made current, as
    NCCL needs), else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(info.local_rank)
        return torch.device("cuda", info.local_rank)
    return torch.device("cpu")


def shard(items: Sequence[Any], info: DistInfo) -> list[Any]:
    """This rank's share: ``items[rank::world_size]`` (strided, so long and short examples spread)."""
    return list(items[info.rank :: info.world_size])


def _pack(result: Any, prefix: str = "") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and other fields by name; a field holding a dataclass (``HeadScores.trials``) is
    packed under ``"<field>.<name>"``."""
    if not dataclasses.is_dataclass(result):
        raise TypeError(f"run_sharded merges dataclass results (EvalResult, HeadScores, PatchSweep ...), got "
                        f"{type(result).__name__}; return one from the function")
    tensors, rest = {}, {}
    for f in dataclasses.fields(result):
        value = getattr(result, f.name)
        if isinstance(value, torch.Tensor):
            tensors[prefix + f.name] = value.detach().cpu().contiguous()
        elif dataclasses.is_dataclass(value):
            inner = _pack(value, f"{prefix}{f.name}.")
            tensors.update(inner[0])
            rest.update(inner[1])
        else:
            rest[prefix + f.name] = value
    return tensors, rest


def _unpack(like: Any, fields: dict[str, Any], prefix: str = "") -> Any:
    """The inverse of :func:`_pack`, shaped like ``like`` (rank 0's own result)."""
    return type(like)(**{
        f.name: _unpack(getattr(like, f.name), fields, f"{prefix}{f.name}.")
        if dataclasses.is_dataclass(getattr(like, f.name)) else fields[prefix + f.name]
        for f in dataclasses.fields(like)
    })


def _gather_bytes(payload: bytes, info: DistInfo, device: torch.device) -> list[bytes]:
    """Every rank's ``payload`` (all_gather of padded uint8 tensors; works on gloo and NCCL)."""
    data = torch.frombuffer(bytearray(payload), dtype=torch.uint8) if payload else torch.zeros(0, dtype=torch.uint8)
    size = torch.tensor([data.numel()], dtype=torch.long, device=device)
    sizes = [torch.zeros_like(size) for _ in range(info.world_size)]
    dist.all_gather(sizes, size)
    width = int(max(s.item() for s in sizes))
    buf = torch.zeros(width, dtype=torch.uint8, device=device)
    buf[: data.numel()] = data.to(device)
    bufs = [torch.zeros_like(buf) for _ in range(info.world_size)]
    dist.all_gather(bufs, buf)
    return [bytes(b[: int(s.item())].cpu().numpy().tobytes()) for b, s in zip(bufs, sizes)]


def merge_shards(results: Sequence[Any], info_world: int, n_items: int) -> Any:
    """Put per-rank results (rank order; rank ``r`` scored ``items[r::world]``) back into one, in
    item order. A tensor field is concatenated along its example axis: 0, or what the result
    class's ``EXAMPLE_AXES`` (``{field: axis}``) says; a field that is ``None`` stays ``None``."""
    first = results[0]
    axes: dict[str, int] = getattr(type(first), "EXAMPLE_AXES", {})
    order = torch.cat([torch.arange(r, n_items, info_world) for r in range(info_world)])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n_items)
    merged: dict[str, Any] = {}
    for f in dataclasses.fields(first):
        values = [getattr(r, f.name) for r in results]
        if dataclasses.is_dataclass(values[0]):
            merged[f.name] = merge_shards(values, info_world, n_items)
        elif isinstance(values[0], torch.Tensor):
            axis = axes.get(f.name, 0)
            merged[f.name] = torch.cat(values, dim=axis).index_select(axis % values[0].ndim, inverse)
        elif all(isinstance(v, list) and len(v) == len(range(r, n_items, info_world)) for r, v in enumerate(values)):
            flat = [v for vs in values for v in vs]
            merged[f.name] = [flat[int(i)] for i in inverse]
        else:
            merged[f.name] = values[0]
    return type(first)(**merged)


def run_sharded(fn: Callable[[list[Any]], R], examples: Sequence[Any], info: DistInfo | None = None) -> R | None:
    """``fn(shard)`` on this rank's share of ``examples``; rank 0 returns the merged result for all
    examples (in order), other ranks ``None``. One process (``world_size`` 1): ``fn(list(examples))``.

    Args:
        fn: the analyzer on a list of examples, returning a dataclass result with per-example
            fields (see the module docstring).
        examples: all examples (the same list on every rank).
        info: from :func:`rhlens.training.distributed.setup` (default: ``setup()`` for the CPU, or
            the group already joined).

    Raises:
        ValueError: fewer examples than ranks (a rank would have none).

    One process (no launcher): the function runs once on every example.

    >>> run_sharded(lambda shard: len(shard), ["a", "b", "c"])
    3
    >>> import rhlens
    >>> model, examples = rhlens.load_base(), rhlens.generate("kv", "symbolic", n=3, context_tokens=64)
    >>> result = run_sharded(lambda shard: rhlens.evaluate(model, shard, metric="logprob", progress=False), examples)
    >>> result.per_example.shape, result.metric
    (torch.Size([3]), 'logprob')
    """
    info = info or setup()
    if not info.enabled:
        return fn(list(examples))
    if len(examples) < info.world_size:
        raise ValueError(f"run_sharded: {len(examples)} examples over {info.world_size} processes leaves a rank "
                         "without any; use fewer processes or more examples")
    mine = shard(examples, info)
    local = fn(mine)
    tensors, rest = _pack(local)
    payload = json.dumps({"rest": rest}, default=str).encode() + b"\0" + _st_save(tensors)
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    gathered = _gather_bytes(payload, info, device)
    if not info.is_main:
        return None
    parts: list[Any] = [local]  # rank 0's own object: its fields that are not per example are kept as they are
    for blob in gathered[1:]:
        head, _, body = blob.partition(b"\0")
        fields = {**json.loads(head)["rest"], **_st_load(body)}
        parts.append(_unpack(local, fields))
    return merge_shards(parts, info.world_size, len(examples))
