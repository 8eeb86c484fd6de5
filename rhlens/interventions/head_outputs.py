"""Hooks on a head's output before the output projection (``hook_z``, ``[batch, pos, head,
d_head]``): the one way the interventions read and overwrite it.

- :func:`head_output_hooks`: one hook per layer calling ``fn(layer, z)``; ``fn`` returns ``None``
  to read (capture, means) or a new ``z`` to write (knockout, patching).
- :func:`overwrite_heads`: ``z`` with heads ``idx`` replaced by ``new`` where a ``[batch, pos]``
  mask says so.

Hook names come from :func:`rhlens.adapter.hook_name`, so only the adapter knows them.

>>> import torch
>>> z = torch.ones(1, 2, 3, 1)                                   # [batch, pos, head, d_head]
>>> overwrite_heads(z, [1], torch.zeros(1, 2, 1, 1), torch.tensor([[False, True]]))[0, :, :, 0].tolist()
[[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]]
>>> [name for name, _ in head_output_hooks([2, 0], lambda layer, z: None)] == [hook_name("z", 0), hook_name("z", 2)]
True
"""

from functools import partial
from typing import Any, Callable, Iterable

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens.adapter import hook_name

OutputFn = Callable[[int, Float[Tensor, "batch pos head d_head"]], "Tensor | None"]


def _call(fn: OutputFn, layer: int, z: Tensor, hook: Any) -> Tensor | None:
    return fn(layer, z)


def head_output_hooks(layers: Iterable[int], fn: OutputFn) -> list[tuple[str, Callable]]:
    """``[(hook name, hook)]``: at each of ``layers``' ``hook_z``, ``fn(layer, z)`` (its return value,
    when not ``None``, replaces ``z``). Attach with :func:`rhlens.adapter.hooks`."""
    return [(hook_name("z", layer), partial(_call, fn, layer)) for layer in sorted(set(layers))]


def overwrite_heads(
    z: Float[Tensor, "batch pos head d_head"],
    idx: list[int],
    new: Float[Tensor, "batch pos n_idx d_head"],
    where: Bool[Tensor, "batch pos"] | None,
) -> Float[Tensor, "batch pos head d_head"]:
    """A copy of ``z`` with heads ``idx`` set to ``new`` at the ``where`` positions (``None``:
    everywhere)."""
    z = z.clone()
    z[:, :, idx] = new if where is None else torch.where(where[:, :, None, None], new, z[:, :, idx])
    return z
