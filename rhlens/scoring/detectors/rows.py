"""The pass under QRHead's query focus: one shared prefix, several tails, mean attention of chosen rows.

:func:`forked_attention` takes, per sequence, a *prefix* (the tokens every variant shares: the
documents before the question) and several *tails* (the real question and the null one, with what
follows), each with the tail rows to observe. Per batch the prefixes are left-padded into one block
and prefilled once through the run engine (:mod:`rhlens.engine`, chunks of ``chunk_size``, fused
attention where the model supports it, no pattern hook); the key/value cache is then forked, one
copy per tail variant but the last, and each variant's tails run right-padded after it with one
hook per layer that folds the chunk's ``[batch, head, q, key]`` pattern into the mean over the
observed rows right away (no full pattern is kept). Right padding at the end is invisible to the
real tokens (causal attention; padding keys are masked), so every variant sees its prefix exactly
once computed.

``reduce(i, means)`` gets, per variant, ``[group, layer, head, len(prefix) + len(tail)]`` (one
group per set of observed rows) in the sequence's own coordinates (prefix keys, then tail keys) as
soon as its batch is done.

Memory: the cache of one batch of prefixes, once more per extra variant, plus ``O(batch x layers x
heads x width)`` for the sums and one chunk's eager attention on the hooked layers.
"""

import copy
from functools import partial
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, architecture, hook_name, hooks, tokenizer_of
from rhlens.encoding import PaddedBatch, char_span_to_token_span, pad_id_of

Reduce = Callable[[int, list[Float[Tensor, "group layer head key"]]], None]


def forked_attention(
    model: Model,
    prefixes: Sequence[Sequence[int]],
    tails: Sequence[Sequence[Sequence[int]]],
    rows: Sequence[Sequence[Tensor]],
    reduce: Reduce,
    *,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
    desc: str = "attention rows",
) -> None:
    """Call ``reduce(i, [A_v[group, layer, head, key] per variant v])`` for every sequence ``i``.

    Args:
        prefixes: the shared tokens of each sequence (BOS included when the model uses one; at
            least one token).
        tails: per sequence, the tokens of each variant after the prefix (the same number of
            variants for every sequence).
        rows: per sequence and variant, bool ``[group, len(tail)]``: the tail rows whose attention
            is averaged, per group (at least one each; a variant has the same groups everywhere).
    """
    n_var = len(tails[0]) if tails else 0
    for i, (pre, ts, rs) in enumerate(zip(prefixes, tails, rows)):
        if not pre or len(ts) != n_var or len(rs) != n_var:
            raise ValueError(f"forked_attention: sequence {i} needs a prefix and {n_var} tails with their rows")
        for t, r in zip(ts, rs):
            if r.ndim != 2 or r.shape[1] != len(t) or not bool(r.any(dim=1).all()):
                raise ValueError(f"forked_attention: sequence {i} needs a [group, {len(t)}] row mask with a row in every group")
    n_layers = architecture(model).n_layers
    pad = pad_id_of(tokenizer_of(model))
    for batch in engine.batches([model], prefixes, batch_size=batch_size, progress=progress, desc=desc):
        width = batch.padded.tokens.shape[1]
        run = batch.runner()
        run.feed(batch.padded, width, chunk_size)
        caches = [run.caches] + [copy.deepcopy(run.caches) for _ in range(n_var - 1)]
        got: dict[int, list[Tensor]] = {i: [] for i in batch.rows}
        for v in range(n_var):
            run.caches, run.end = caches[v], width
            tail = [list(tails[i][v]) for i in batch.rows]
            n_groups = rows[batch.rows[0]][v].shape[0]
            weights = torch.zeros(n_groups, len(batch.rows), max(len(t) for t in tail), device=batch.padded.tokens.device)
            for b, i in enumerate(batch.rows):
                r = rows[i][v].to(weights.device, torch.float32)
                weights[:, b, : r.shape[1]] = r / r.sum(dim=1, keepdim=True)
            sums = _run_tail(model, run, _pad_right(tail, pad, weights.device), weights, width, n_layers, chunk_size)
            for b, i in enumerate(batch.rows):
                off = int(batch.padded.offsets[b])
                means = torch.cat([sums[:, b, ..., off:width], sums[:, b, ..., width : width + len(tail[b])]], dim=-1)
                got[i].append(means.cpu())
        for i in batch.rows:
            reduce(i, got[i])


def _pad_right(seqs: list[list[int]], pad: int, device: Any) -> PaddedBatch:
    width = max(len(s) for s in seqs)
    tokens = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for b, s in enumerate(seqs):
        tokens[b, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[b, : len(s)] = 1
    return PaddedBatch(tokens=tokens.to(device), attention_mask=mask.to(device), offsets=torch.zeros(len(seqs), dtype=torch.long))


def _run_tail(
    model: Model, run: engine.Runner, tail: PaddedBatch, weights: Float[Tensor, "group batch tail"], start: int,
    n_layers: int, chunk_size: int | None,
) -> Float[Tensor, "group batch layer head width"]:
    """Run the right-padded ``tail`` after the cached prefix (columns ``start ..``) with the
    folding hooks; the weighted row sums ``[group, batch, layer, head, start + tail width]``."""
    total = start + tail.tokens.shape[1]
    sums: list[Tensor | None] = [None] * n_layers

    def fold(pattern: Tensor, hook: Any, *, layer: int) -> None:
        step = engine.current_step()
        assert step is not None
        q, keys = pattern.shape[2], pattern.shape[3]
        w = weights[:, :, step.end - q - start : step.end - start]  # [group, batch, q]
        part = torch.einsum("gbq,bhqk->gbhk", w.to(pattern.dtype), pattern).float()
        if sums[layer] is None:
            sums[layer] = torch.zeros(*part.shape[:3], total, device=part.device)
        sums[layer][..., :keys] += part  # type: ignore[index]

    fwd = [(hook_name("pattern", l), partial(fold, layer=l)) for l in range(n_layers)]
    with hooks(model, fwd):
        for s, e in engine.chunk_bounds(0, tail.tokens.shape[1], chunk_size):
            run(tail.tokens[:, s:e], tail.attention_mask[:, s:e])
    return torch.stack([x for x in sums if x is not None], dim=2)  # type: ignore[misc]


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
