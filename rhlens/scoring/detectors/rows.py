"""The one pass under the attention detectors: mean attention of chosen query rows, every head.

:func:`row_attention` runs token sequences through the run engine (:mod:`rhlens.engine`: sorted,
left-padded batches, a KV cache, chunks of ``chunk_size``) and, for each sequence and each *row
group* (a set of query positions: the last prompt token, the answer-predicting rows, a question's
tokens ...), averages the attention rows of that group: ``A[g, layer, head, key]`` is the mean over
the group's query positions of the head's attention probability on ``key``. The columns before
the first row of any group are prefilled without a pattern hook (fused attention where the model
supports it); the rest runs with one hook per layer that folds each chunk's ``[batch, head, q,
key]`` pattern into ``[group, batch, head, key]`` sums right away, so no full pattern is kept.

Each sequence's means go to ``reduce(i, A)`` (``A`` ``[group, layer, head, len(sequence)]`` in the
sequence's own coordinates, keys past a row's own position are 0) as soon as its batch is done;
detectors reduce them to ``[layer, head]`` there.

Memory: per batch ``O(groups x batch x layers x heads x width)`` for the sums, plus what one
chunk's eager attention needs (``[batch, head, chunk, width]`` on the hooked layers).
"""

from functools import partial
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, architecture, hook_name, hooks
from rhlens.encoding import char_span_to_token_span

Reduce = Callable[[int, Float[Tensor, "group layer head key"]], None]


def row_attention(
    model: Model,
    sequences: Sequence[Sequence[int]],
    rows: Sequence[Tensor],
    reduce: Reduce,
    *,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
    desc: str = "attention rows",
) -> None:
    """Call ``reduce(i, A[group, layer, head, key])`` for every sequence ``i`` (see the module).

    Args:
        sequences: token ids (BOS included when the model uses one).
        rows: per sequence, bool ``[n_groups, len(sequence)]``: the query positions of each group
            (every group needs at least one).
    """
    if len(rows) != len(sequences):
        raise ValueError(f"row_attention: {len(sequences)} sequences but {len(rows)} row masks")
    for i, (seq, r) in enumerate(zip(sequences, rows)):
        if r.ndim != 2 or r.shape[1] != len(seq) or not bool(r.any(dim=1).all()):
            raise ValueError(f"row_attention: sequence {i} needs a [group, {len(seq)}] mask with a row in every group")
    arch = architecture(model)
    for batch in engine.batches([model], sequences, batch_size=batch_size, progress=progress, desc=desc):
        padded, batch_rows = batch.padded, batch.rows
        n, width = padded.tokens.shape
        device = padded.tokens.device
        weights = torch.zeros(rows[batch_rows[0]].shape[0], n, width, device=device)
        for b, i in enumerate(batch_rows):
            r = rows[i].to(device=device, dtype=torch.float32)
            weights[:, b, int(padded.offsets[b]) :] = r / r.sum(dim=1, keepdim=True)
        sums = _run_batch(batch, weights, arch.n_layers, chunk_size)
        for b, i in enumerate(batch_rows):
            reduce(i, sums[:, b, :, :, int(padded.offsets[b]) :].cpu())


def _run_batch(
    batch: engine.Batch, weights: Float[Tensor, "group batch width"], n_layers: int, chunk_size: int | None
) -> Float[Tensor, "group batch layer head width"]:
    """Prefill up to the first weighted column, then the rest with the folding hooks."""
    model, padded = batch.models[-1], batch.padded
    n, width = padded.tokens.shape
    first = int(weights.sum(dim=(0, 1)).nonzero().min())
    sums: list[Tensor | None] = [None] * n_layers

    def fold(pattern: Tensor, hook: Any, *, layer: int) -> None:
        step = engine.current_step()
        assert step is not None
        q, keys = pattern.shape[2], pattern.shape[3]
        w = weights[:, :, step.end - q : step.end]  # [group, batch, q]
        part = torch.einsum("gbq,bhqk->gbhk", w.to(pattern.dtype), pattern).float()
        if sums[layer] is None:
            sums[layer] = torch.zeros(*part.shape[:3], width, device=part.device)
        sums[layer][..., :keys] += part  # type: ignore[index]

    run = batch.runner()
    run.feed(padded, first, chunk_size)
    fwd = [(hook_name("pattern", l), partial(fold, layer=l)) for l in range(n_layers)]
    with hooks(model, fwd):
        for start, end in engine.chunk_bounds(first, width, chunk_size):
            run(padded.tokens[:, start:end], padded.attention_mask[:, start:end])
    return torch.stack([s for s in sums if s is not None], dim=2)  # type: ignore[misc]


def token_mask(
    tokenizer: Any, text: str, spans: Sequence[tuple[int, int]], *, n_tokens: int, n_bos: int, what: str
) -> Bool[Tensor, "n_tokens"]:
    """Bool ``[n_tokens]``: the tokens of ``text`` (tokenized after ``n_bos`` BOS tokens) whose
    characters overlap one of ``spans`` (offset mapping, as :mod:`rhlens.encoding`).

    Raises ``ValueError`` naming ``what`` when a span covers no token.
    """
    got = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in got["offset_mapping"]][: n_tokens - n_bos]
    mask = torch.zeros(n_tokens, dtype=torch.bool)
    for s, e in spans:
        try:
            a, b = char_span_to_token_span(offsets, (s, e))
        except ValueError as err:
            raise ValueError(f"{what}: characters {s}:{e} ({text[s:e][:40]!r}) cover no token: {err}") from None
        mask[n_bos + a : n_bos + b] = True
    return mask
