"""One engine run of a padded batch that keeps activations: what a patch sweep reads from its
source (``hook_z``) and target (``hook_resid_pre``), and attribution from a bridge source.

>>> import torch
>>> from rhlens.encoding import pad_left
>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(seed=0)
>>> batch = pad_left([[1, 5, 6, 7], [1, 8]], pad_id=0)
>>> z = capture_activations(model, batch, torch.tensor([3, 3]), [(0, 2), (2, 4)], "z", [0, 1])
>>> sorted(z), tuple(z[1].shape)                                  # [batch, pos, head, d_head]
([0, 1], (2, 4, 4, 16))
"""

from typing import Any, Sequence

import torch
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, hook_name, hooks
from rhlens.encoding import PaddedBatch


def capture_activations(
    model: Model,
    batch: PaddedBatch,
    decode_from: Tensor,
    bounds: list[tuple[int, int]],
    kind: str,
    layers: Sequence[int],
    acc: "engine.AnswerLogprobSum | None" = None,
) -> dict[int, Tensor]:
    """One engine run of ``batch`` (``[batch, pos]`` tokens, fed in the ``bounds`` column chunks;
    ``decode_from`` ``[batch]`` as in :class:`rhlens.engine.Runner`) keeping the ``kind`` activations
    (a :data:`rhlens.adapter.HOOK_KINDS` name, e.g. ``"z"``) at ``layers``: ``{layer: [batch, pos,
    ...]}`` on the model's device. The logits go to ``acc`` when given."""
    parts: dict[int, list[Tensor]] = {l: [] for l in layers}

    def capture(layer: int):
        def hook(act: Tensor, hook: Any) -> None:
            step = engine.current_step()
            width = step.end - step.start if step is not None else act.shape[1]
            parts[layer].append(act[:, act.shape[1] - width :].detach().clone())  # a bridge may re-run the prefix

        return hook

    run = engine.Runner([model], batch.tokens.shape[0], decode_from, cache=len(bounds) > 1)
    with hooks(model, [(hook_name(kind, l), capture(l)) for l in layers]):
        for s, e in bounds:
            logits = run(batch.tokens[:, s:e], batch.attention_mask[:, s:e])
            if acc is not None:
                acc.add(s, logits)
    return {l: torch.cat(p, dim=1) for l, p in parts.items()}
