"""The effect of patching each head alone from a source into a target: ``[n_layers, n_heads]``.

Metric: the teacher-forced log-probability of the gold answer (``" " + answer``, summed over its
tokens; see :func:`rhlens.evaluate`). It needs no decoding, so every head's effect comes from
forwards over prompt + answer, and it is smooth: a head that moves the answer by a fraction of a
nat shows up, where exact match would read 0.

Batching: the source runs once per batch of examples (its ``hook_z`` at every layer and head is
kept); then, per layer, the target runs once on the batch replicated ``n_heads`` times, replica
``h`` patching head ``h`` only. Cost: ``1 + n_layers`` target-sized forwards per batch, each over
``n_heads x batch_size`` rows (pass ``heads_per_forward`` to split a layer's heads over several
forwards), instead of ``n_layers x n_heads`` separate patched runs; plus one unpatched baseline
forward. FLOPs are the same as patching head by head; the win is fewer, larger forwards.

Memory: the source's ``hook_z`` for a batch, ``batch x pos x n_layers x n_heads x d_head``
values (the size of a residual-stream cache), and a target forward over
``heads_per_forward x batch_size`` rows.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks import Example
>>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
>>> tok = word_level_tokenizer([ex.prompt + ex.completion])
>>> sweep = patch_sweep(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex], progress=False)
>>> sweep.effect.shape
torch.Size([2, 4])
"""

from typing import Any, Sequence

import torch
from torch import Tensor

from rhlens import engine
from rhlens.adapter import architecture, hook_name, hooks, model_device, tokenizer_of
from rhlens.encoding import PaddedBatch, pad_id_of
from rhlens.evaluation import LOGPROB
from rhlens.interventions.compat import check_compatible
from rhlens.interventions.patching import PositionRule, check_positions, column_mask
from rhlens.interventions.results import PatchSweep


def _replicate(batch: PaddedBatch, times: int) -> PaddedBatch:
    return PaddedBatch(
        tokens=batch.tokens.repeat(times, 1),
        attention_mask=batch.attention_mask.repeat(times, 1),
        offsets=batch.offsets.repeat(times),
    )


def _run(model: Any, batch: PaddedBatch, decode_from: Tensor) -> Tensor:
    """One engine forward of the whole batch (no cache): logits ``[batch, pos, d_vocab]``."""
    run = engine.Runner([model], batch.tokens.shape[0], decode_from, cache=False)
    return run(batch.tokens, batch.attention_mask)


def _source_z(source: Any, batch: PaddedBatch, n_layers: int, decode_from: Tensor) -> dict[int, Tensor]:
    """``{layer: hook_z [batch, pos, head, d_head]}`` of the source on ``batch``."""
    store: dict[int, Tensor] = {}

    def capture(layer: int):
        def hook(z: Tensor, hook: Any) -> None:
            store[layer] = z.detach().clone()

        return hook

    with hooks(source, [(hook_name("z", l), capture(l)) for l in range(n_layers)]):
        _run(source, batch, decode_from)
    return store


def _one_head_per_replica(src: Tensor, heads: list[int], cols: Tensor):
    """A ``hook_z`` hook for a batch replicated ``len(heads)`` times: replica ``i`` patches head
    ``heads[i]`` with ``src`` ``[batch, pos, head, d_head]`` where ``cols`` ``[batch, pos]``."""
    n_rep, b = len(heads), src.shape[0]
    n_heads = src.shape[2]
    onehot = torch.zeros(n_rep, n_heads, dtype=torch.bool)
    onehot[torch.arange(n_rep), torch.tensor(heads)] = True
    # [n_rep * batch, pos, head, 1]
    where = (onehot[:, None, None, :] & cols[None, :, :, None]).reshape(n_rep * b, cols.shape[1], n_heads)[..., None]
    src_rep = src.repeat(n_rep, 1, 1, 1)

    def hook(z: Tensor, hook: Any) -> Tensor:
        return torch.where(where.to(z.device), src_rep.to(device=z.device, dtype=z.dtype), z)

    return hook


def patch_sweep(
    source: Any,
    target: Any,
    examples: Sequence[Any],
    metric: str = "logprob",
    *,
    positions: PositionRule = "all",
    batch_size: int = 4,
    heads_per_forward: int | None = None,
    progress: bool = True,
) -> PatchSweep:
    """Patch every head of ``source`` into ``target`` alone and measure the answer log-prob.

    Args:
        source, target: models that pass :func:`rhlens.check_compatible`.
        examples: :class:`rhlens.tasks.Example` records (prompt + gold answer must fit the context).
        metric: ``"logprob"`` (the only metric this batched sweep supports; see the module docstring).
        positions: where each head is patched (as in :func:`rhlens.patch_heads`).
        batch_size: examples per forward (the target forward holds ``heads_per_forward x
            batch_size`` rows).
        heads_per_forward: heads of one layer patched per target forward (default all).
        progress: a tqdm bar over batches.

    Returns:
        :class:`PatchSweep`: ``effect`` ``[n_layers, n_heads]`` (query heads) is the mean change
        in log-prob from patching that head alone; ``patched`` keeps every example.
    """
    if metric != LOGPROB:
        raise ValueError(
            f"patch_sweep supports metric={LOGPROB!r} only (teacher-forced, batched over heads); got {metric!r}. "
            "For a generation metric, call rhlens.patch_heads per head."
        )
    check_positions(positions)
    check_compatible(source, target)
    arch = architecture(target)
    n_layers, n_heads = arch.n_layers, arch.n_heads
    group = heads_per_forward or n_heads
    if group < 1:
        raise ValueError(f"heads_per_forward must be >= 1, got {heads_per_forward}")
    head_groups = [list(range(s, min(s + group, n_heads))) for s in range(0, n_heads, group)]
    encoded = engine.encode(target, examples, what="patch_sweep", with_answer=True, append_eos=False)
    pad = pad_id_of(tokenizer_of(target))
    device = model_device(target)
    baseline = torch.zeros(len(examples), dtype=torch.float64)
    patched = torch.zeros(n_layers, n_heads, len(examples), dtype=torch.float64)
    with engine.running([source, target]):
        for rows, batch in engine.batched(
            [e.tokens for e in encoded], pad_id=pad, device=device, batch_size=batch_size, progress_bar=progress,
            desc="patch sweep",
        ):
            encs = [encoded[i] for i in rows]
            cols = column_mask(positions, encs, batch.offsets.cpu(), batch.tokens.shape[1])
            decode_from = engine.first_decoding_column(batch, encs)
            src = _source_z(source, batch, n_layers, decode_from)
            acc = engine.TeacherForced(batch, encs)
            acc.add(0, _run(target, batch, decode_from))
            baseline[rows] = acc.total.cpu()
            for layer in range(n_layers):
                for heads in head_groups:
                    rep = _replicate(batch, len(heads))
                    acc = engine.TeacherForced(rep, encs * len(heads))
                    hook = _one_head_per_replica(src[layer], heads, cols)
                    with hooks(target, [(hook_name("z", layer), hook)]):
                        acc.add(0, _run(target, rep, decode_from.repeat(len(heads))))
                    patched[layer, heads[0] : heads[-1] + 1, rows] = acc.total.cpu().view(len(heads), -1)
            del src
    return PatchSweep(baseline=baseline.float(), patched=patched.float(), metric=LOGPROB)
