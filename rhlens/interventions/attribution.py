"""Attribution patching: every head's cross-model patching effect from two forwards and one backward.

Nanda's attribution patching (and Kramár et al. 2024, "AtP*") replaces the exact sweep of
:func:`rhlens.patch_sweep` (one patched run per head) with its first-order Taylor estimate around
the target's own run. With ``z`` a head's ``hook_z`` output (``[pos, d_head]`` per example) and
``M`` the target's teacher-forced answer log-prob (:func:`rhlens.evaluate`'s ``"logprob"``):

    effect(L, H) ~= sum over patched positions and d_head of (z_source - z_target) * dM/dz_target

where ``dM/dz_target`` is the *total* derivative (through every later layer) at the unpatched
target. Cost per batch of examples: one source forward (no gradient), one target forward with a
graph, one backward to the ``hook_z`` activations only (weights get no gradients), about three
forward-equivalents in all, for every head at once. ``bench/bench_patching.py`` checks it against
the exact sweep (Spearman correlation, top-10 overlap) and confirms the nominated heads with
``patch_sweep(..., heads=result.top(k))``.

AtP*'s fixes:

- *QK fix* (attention saturation): AtP* recomputes the softmax exactly when the patched node is a
  query or key, because a linear estimate through a saturated softmax misses large changes. Here
  the patched node is the head's *output* ``hook_z``, which lies after its own softmax: the
  patch never passes through the patched head's attention pattern, so the QK fix does not apply.
  Later layers' softmaxes remain linearised (the estimate's error, measured by the bench).
- *Gradient dropout* (cancellation between paths): not implemented; it needs one backward per
  layer (``n_layers`` backwards), beyond the three-forward budget. Confirm the nominated heads
  with the exact sweep instead.

Memory: the source's and target's ``hook_z`` at every layer for one batch and the target's
autograd graph (activations of one full forward): run long prompts with a small ``batch_size``.
Prompts are not chunked.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks import Example
>>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
>>> tok = word_level_tokenizer([ex.prompt + ex.completion])
>>> est = attribution_sweep(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex], progress=False)
>>> est.effect.shape, est.metric
(torch.Size([2, 4]), 'logprob (attribution)')
"""

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import Tensor

from rhlens import engine
from rhlens.adapter import (
    architecture,
    final_residual,
    forward,
    hook_name,
    hooks,
    logits_from_residual,
    model_device,
    model_kind,
    tokenizer_of,
)
from rhlens.adapter.fused import fused_attention
from rhlens.encoding import pad_id_of
from rhlens.interventions.compat import check_compatible
from rhlens.interventions.patching import PositionRule, check_positions, column_mask
from rhlens.interventions.results import PatchSweep
from rhlens.interventions.sweep import _capture_pass

ATTRIBUTION = "logprob (attribution)"


@contextlib.contextmanager
def _gradient_mode(model: Any) -> Iterator[None]:
    """Eval mode, fused attention, autograd on, and no gradient to the weights (only to the
    activations a hook marks); training flag and ``requires_grad`` restored after."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    was_training = model.training
    model.eval()
    try:
        for p in params:
            p.requires_grad_(False)
        with fused_attention(model, strict=False), torch.inference_mode(False), torch.enable_grad():
            yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
        model.train(was_training)


def _answer_logits(model: Any, batch: Any, predicts: Tensor) -> Tensor:
    """Logits ``[n_answer_columns, d_vocab]`` at the ``predicts`` columns: a HookedTransformer
    stops before the unembedding and unembeds only those; a TransformerBridge runs in full."""
    if model_kind(model) != "hooked":
        return forward(model, batch.tokens, attention_mask=batch.attention_mask)[predicts]
    final = final_residual(model, batch.tokens, attention_mask=batch.attention_mask, prepend_bos=False)
    return logits_from_residual(model, final[predicts][None])[0]


def _source_z(source: Any, batch: Any, decode_from: Tensor, layers: list[int]) -> dict[int, Tensor]:
    """The source's ``hook_z`` ``{layer: [batch, pos, head, d_head]}``, stopping before the
    unembedding where the model allows."""
    if model_kind(source) != "hooked":
        return _capture_pass(source, batch, decode_from, [(0, batch.tokens.shape[1])], "z", layers)
    store: dict[int, Tensor] = {}

    def capture(layer: int):
        def hook(z: Tensor, hook: Any) -> None:
            store[layer] = z.detach().clone()

        return hook

    with hooks(source, [(hook_name("z", l), capture(l)) for l in layers]):
        final_residual(source, batch.tokens, attention_mask=batch.attention_mask, prepend_bos=False)
    return store


def attribution_sweep(
    source: Any,
    target: Any,
    examples: Sequence[Any],
    *,
    positions: PositionRule = "all",
    batch_size: int = 4,
    progress: bool = True,
) -> PatchSweep:
    """Estimate every head's effect of patching ``source``'s ``hook_z`` into ``target`` alone.

    Args:
        source, target: models that pass :func:`rhlens.check_compatible`.
        examples: :class:`rhlens.tasks.Example` records (prompt + gold answer must fit the context).
        positions: where a head would be patched (as in :func:`rhlens.patch_heads`).
        batch_size: examples per forward (the backward holds one batch's graph).
        progress: a progress bar over batches.

    Returns:
        :class:`PatchSweep` with ``metric="logprob (attribution)"``: ``baseline`` ``[n_examples]``
        the unpatched target's answer log-prob, ``patched`` ``[n_layers, n_heads, n_examples]``
        the baseline plus each head's first-order estimate, so ``effect`` ``[n_layers, n_heads]``
        (query heads) is the estimated mean change, comparable with :func:`rhlens.patch_sweep`'s.
    """
    check_positions(positions)
    check_compatible(source, target)
    arch = architecture(target)
    layers = list(range(arch.n_layers))
    encoded = engine.encode(target, examples, what="attribution_sweep", with_answer=True, append_eos=False)
    pad = pad_id_of(tokenizer_of(target))
    device = model_device(target)
    baseline = torch.zeros(len(examples), dtype=torch.float64)
    estimate = torch.zeros(arch.n_layers, arch.n_heads, len(examples), dtype=torch.float64)
    for rows, batch in engine.batched(
        [e.tokens for e in encoded], pad_id=pad, device=device, batch_size=batch_size, progress=progress,
        desc="attribution",
    ):
        encs = [encoded[i] for i in rows]
        width = batch.tokens.shape[1]
        cols = column_mask(positions, encs, batch.offsets.cpu(), width)
        decode_from = engine.first_decoding_column(batch, encs)
        with engine.running([source]):
            src = _source_z(source, batch, decode_from, layers)
        delta: dict[int, Tensor] = {}
        tgt: dict[int, Tensor] = {}

        def mark(layer: int):
            def hook(z: Tensor, hook: Any) -> Tensor:
                tgt[layer] = z.detach()
                delta[layer] = torch.zeros_like(z, requires_grad=True)
                return z + delta[layer]  # d(metric)/d(delta) is d(metric)/dz through every later layer

            return hook

        predicts = engine.answer_targets(batch, encs)
        gold = torch.roll(batch.tokens, -1, dims=1)[predicts]
        with _gradient_mode(target), hooks(target, [(hook_name("z", l), mark(l)) for l in layers]):
            logits = _answer_logits(target, batch, predicts.to(device))
            lp = logits.float().log_softmax(-1).gather(-1, gold[:, None].to(logits.device))[:, 0]
            per_row = torch.zeros(len(rows), dtype=lp.dtype, device=lp.device).index_add(
                0, predicts.nonzero()[:, 0].to(lp.device), lp
            )
            grads = torch.autograd.grad(per_row.sum(), [delta[l] for l in layers])
        baseline[rows] = per_row.detach().double().cpu()
        where = cols.to(device)[:, :, None, None]
        with torch.no_grad():
            for l, g in zip(layers, grads):
                diff = (src[l].to(g.dtype) - tgt[l]) * where  # [batch, pos, head, d_head]
                estimate[l][:, rows] = (diff * g).double().sum(dim=(1, 3)).T.cpu()
        del src, tgt, delta, grads, logits
    return PatchSweep(baseline=baseline.float(), patched=(baseline[None, None, :] + estimate).float(), metric=ATTRIBUTION)
