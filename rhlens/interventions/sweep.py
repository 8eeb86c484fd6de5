"""The effect of patching each head alone from a source into a target: ``[n_layers, n_heads]``.

Metric: the teacher-forced log-probability of the gold answer (``" " + answer``, summed over its
tokens; see :func:`rhlens.evaluate`). It needs no decoding, so every head's effect comes from
forwards over prompt + answer, and it is smooth: a head that moves the answer by a fraction of a
nat shows up, where exact match would read 0.

How the work is shared (per batch of examples):

1. the source runs once and its ``hook_z`` is kept at every swept layer;
2. the target runs once (the baseline) and its residual stream *before* every swept layer is kept
   (``hook_resid_pre``): patching a head of layer ``L`` changes nothing before ``L``, so this is the
   same for every head of that layer;
3. per layer ``L``, the batch is replicated once per head (``heads_per_forward`` at a time, replica
   ``i`` patching head ``i`` only) and only blocks ``L .. n_layers - 1`` run, starting from the
   kept residual; the unembedding runs only at the columns that predict answer tokens.

Compared with one full forward per head (TransformerLens's
``patching.get_act_patch_attn_head_out_all_pos``), the blocks run drop from ``n_layers`` per head to
``n_layers - L`` (about half over the model), forwards from ``n_layers x n_heads`` to ``n_layers``
(fewer, larger ones) and the ``[pos, d_vocab]`` logits to the answer's columns. Long prompts run in
chunks of ``chunk_size`` columns with a KV cache, in every pass. ``bench/bench_patching.py``
measures the speed-up. A TransformerBridge of an architecture :func:`rhlens.adapter.forward_from_layer`
does not walk (:func:`rhlens.adapter.forward_from_layer_unsupported`) runs full forwards per layer
(same batching).

Memory: per batch, the source's ``hook_z`` and the target's residual at each swept layer (each
``batch x pos x d_model`` per layer: a residual-stream cache), and a target forward over
``heads_per_forward x batch_size`` rows with its KV cache.

Example: :func:`patch_sweep`.
"""

from typing import Any, Iterable, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, architecture, forward_from_layer, forward_from_layer_unsupported, hooks, logits_from_residual, new_kv_cache
from rhlens.encoding import EncodedExample, PaddedBatch, encode_for_model
from rhlens.evaluation import LOGPROB
from rhlens.heads import Head
from rhlens.interventions.capture import capture_activations
from rhlens.interventions.head_outputs import head_output_hooks
from rhlens.interventions.head_sets import all_heads, heads_by_layer
from rhlens.interventions.compatibility import check_compatible
from rhlens.interventions.patching import PositionRule, check_positions, column_mask
from rhlens.interventions.results import PatchSweep

HeadsArg = Iterable["Head | str | tuple[int, int]"]


# ---------------------------------------------------------------------------------------------
# Answer log-probabilities from final residuals


def _answer_logprob(
    model: Model, final: Float[Tensor, "n_sel d_model"], gold: Int[Tensor, "n_sel"]
) -> Float[Tensor, "n_sel"]:
    """``log P(gold)`` (float64) from final residuals of the selected columns."""
    logits = logits_from_residual(model, final[None])[0].float().log_softmax(dim=-1)
    return logits.gather(-1, gold[:, None].to(logits.device))[:, 0].double()


# ---------------------------------------------------------------------------------------------
# Passes


def _replicate(batch: PaddedBatch, times: int) -> PaddedBatch:
    return PaddedBatch(
        tokens=batch.tokens.repeat(times, 1),
        attention_mask=batch.attention_mask.repeat(times, 1),
        offsets=batch.offsets.repeat(times),
    )


def _one_head_per_replica(src: Tensor, heads: list[int], cols: Bool[Tensor, "batch pos"]):
    """A ``fn(layer, z)`` for :func:`head_output_hooks` on a batch replicated ``len(heads)`` times:
    replica ``i`` patches head ``heads[i]`` with ``src`` ``[batch, pos, head, d_head]`` where
    ``cols`` ``[batch, pos]``."""
    n_rep, b, pos, n_heads = len(heads), src.shape[0], src.shape[1], src.shape[2]
    onehot = torch.zeros(n_rep, n_heads, dtype=torch.bool)
    onehot[torch.arange(n_rep), torch.tensor(heads)] = True
    # [n_rep * batch, pos, head, 1]
    where = (onehot[:, None, None, :] & cols[None, :, :, None]).reshape(n_rep * b, pos, n_heads)[..., None]
    src_rep = src.repeat(n_rep, 1, 1, 1)

    def patch(layer: int, z: Tensor) -> Tensor:
        return torch.where(where.to(z.device), src_rep.to(device=z.device, dtype=z.dtype), z)

    return patch


def _patched_group(
    target: Model,
    batch: PaddedBatch,
    encs: Sequence[EncodedExample],
    layer: int,
    heads: list[int],
    src_z: Tensor,
    resid: "Tensor | None",
    cols: Tensor,
    bounds: list[tuple[int, int]],
    decode_from: Tensor,
) -> Float[Tensor, "head batch"]:
    """The answer log-prob ``[len(heads), batch]`` with each of ``heads`` (of ``layer``) patched
    alone: one replicated forward per chunk, from ``layer`` on when ``resid`` (the target's residual
    before ``layer``) is given, else through the whole model."""
    n = len(heads)
    rep = _replicate(batch, n)
    acc = engine.AnswerLogprobSum(rep, list(encs) * n)
    chunked = len(bounds) > 1
    if resid is not None:
        cache = new_kv_cache(target, rep.tokens.shape[0]) if chunked else None
    else:
        run = engine.Runner([target], rep.tokens.shape[0], decode_from.repeat(n), cache=chunked)
    for s, e in bounds:
        patch = _one_head_per_replica(src_z[:, s:e], heads, cols[:, s:e])
        with hooks(target, head_output_hooks([layer], patch)):
            if resid is None:
                acc.add(s, run(rep.tokens[:, s:e], rep.attention_mask[:, s:e]))
                continue
            sel = acc.predicts[:, s:e]
            final = forward_from_layer(target, resid[:, s:e].repeat(n, 1, 1), layer, rep.attention_mask[:, s:e], cache)
        if bool(sel.any()):
            lp = _answer_logprob(target, final[sel.to(final.device)], acc.next_tokens[:, s:e][sel])
            acc.total.index_add_(0, sel.nonzero()[:, 0].to(acc.total.device), lp.to(acc.total.device))
    return acc.total.view(n, -1)


def patch_sweep(
    source: Model,
    target: Model,
    examples: Sequence[Any],
    *,
    metric: str = "logprob",
    heads: "HeadsArg | None" = None,
    positions: PositionRule = "all",
    batch_size: int = 4,
    heads_per_forward: int | None = None,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> PatchSweep:
    """Patch every head of ``source`` into ``target`` alone and measure the answer log-prob.

    Args:
        source, target: models that pass :func:`rhlens.check_compatible`.
        examples: :class:`rhlens.tasks.Example` records (prompt + gold answer must fit the context).
        metric: ``"logprob"`` (the only metric this batched sweep supports; see the module docstring).
        heads: the query heads to sweep (default all); the others' entries are NaN (rank the
            swept ones with ``effect.nan_to_num(nan=-inf)``). Use it to confirm the heads
            :func:`rhlens.interventions.attribution_sweep` nominates.
        positions: where each head is patched (as in :func:`rhlens.patch_heads`).
        batch_size: examples per forward (the target forward holds ``heads_per_forward x
            batch_size`` rows).
        heads_per_forward: heads of one layer patched per target forward (default all of that layer).
        chunk_size: columns per forward (a KV cache carries the earlier ones); ``None``: the whole
            prompt + answer at once.
        progress: a progress bar over batches.

    Returns:
        :class:`PatchSweep`: ``effect`` ``[n_layers, n_heads]`` (query heads) is the mean change
        in log-prob from patching that head alone; ``patched`` keeps every example.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> tok = word_level_tokenizer([ex.prompt + ex.completion])
    >>> sweep = patch_sweep(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex], progress=False)
    >>> sweep.effect.shape
    torch.Size([2, 4])
    >>> part = patch_sweep(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex], heads=["L1H2"],
    ...                    progress=False)
    >>> bool(part.effect[1, 2].isfinite()), bool(part.effect[0, 0].isnan())  # heads not swept are NaN
    (True, True)
    """
    if metric != LOGPROB:
        raise ValueError(
            f"patch_sweep supports metric={LOGPROB!r} only (teacher-forced, batched over heads); got {metric!r}. "
            "For a generation metric, call rhlens.patch_heads per head."
        )
    check_positions(positions)
    check_compatible(source, target)
    arch = architecture(target)
    layers = heads_by_layer(target, all_heads(target) if heads is None else heads, what="patch_sweep heads")
    group = heads_per_forward or arch.n_heads
    if group < 1:
        raise ValueError(f"heads_per_forward must be >= 1, got {heads_per_forward}")
    encoded = encode_for_model(target, examples, what="patch_sweep", with_answer=True, append_eos=False)
    from_layer = forward_from_layer_unsupported(target) is None
    swept = sorted(layers)
    baseline = torch.zeros(len(examples), dtype=torch.float64)
    patched = torch.full((arch.n_layers, arch.n_heads, len(examples)), float("nan"), dtype=torch.float64)
    for one in engine.batches([source, target], [e.tokens for e in encoded], batch_size=batch_size,
                              progress=progress, desc="patch sweep", encoded=encoded):
        rows, batch, encs = one.rows, one.padded, one.encoded
        cols = column_mask(positions, encs, batch.offsets.cpu(), batch.tokens.shape[1])
        decode_from = engine.first_decoding_column(batch, encs)
        bounds = engine.chunk_bounds(0, batch.tokens.shape[1], chunk_size)
        src = capture_activations(source, batch, decode_from, bounds, "z", swept)
        acc = engine.AnswerLogprobSum(batch, encs)
        resid = capture_activations(target, batch, decode_from, bounds, "resid_pre", swept if from_layer else [], acc)
        baseline[rows] = acc.total.cpu()
        for layer in swept:
            idx = sorted(layers[layer])
            for g in range(0, len(idx), group):
                hs = idx[g : g + group]
                out = _patched_group(target, batch, encs, layer, hs, src[layer], resid.get(layer), cols, bounds, decode_from)
                patched[layer, torch.tensor(hs)[:, None], torch.tensor(rows)[None, :]] = out.cpu()
        del src, resid
    return PatchSweep(baseline=baseline.float(), patched=patched.float(), metric=LOGPROB)
