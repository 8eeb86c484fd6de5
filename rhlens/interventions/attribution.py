"""Attribution patching: every head's cross-model patching effect from two forwards and one backward.

Nanda's attribution patching (and Kramár et al. 2024, "AtP*") replaces the exact sweep of
:func:`rhlens.patch_sweep` (one patched run per head) with its first-order Taylor estimate around
the target's own run. With ``z`` a head's ``hook_z`` output (``[pos, d_head]`` per example) and
``M`` the target's teacher-forced answer log-prob (:func:`rhlens.evaluate`'s ``"logprob"``):

    effect(L, H) ~= sum over patched positions and d_head of (z_source - z_target) * dM/dz_target

where ``dM/dz_target`` is the *total* derivative (through every later layer) at the unpatched
target. Cost per batch of examples: one source forward (no gradient, stopped at the last layer's
``hook_z``), one target forward with a graph, one backward to the ``hook_z`` activations only
(weights get no gradients), about three forward-equivalents in all, for every head at once.
``bench/bench_patching.py`` checks it against the exact sweep (Spearman correlation, top-10
overlap) and confirms the nominated heads with ``patch_sweep(..., heads=result.top(k))``.

AtP*'s fixes:

- *QK fix* (attention saturation): AtP* recomputes the softmax exactly when the patched node is a
  query or key, because a linear estimate through a saturated softmax misses large changes. Here
  the patched node is the head's *output* ``hook_z``, which lies after its own softmax: the
  patch never passes through the patched head's attention pattern, so the QK fix does not apply.
  Later layers' softmaxes remain linearised (the estimate's error, measured by the bench).
- *Gradient dropout* (cancellation between paths): opt-in, ``gradient_dropout=True``; see
  :mod:`rhlens.interventions.attribution_graddrop` and :attr:`AttributionSweep.graddrop`.

Memory: the source's and target's ``hook_z`` at every layer for one batch and the target's
autograd graph (activations of one full forward): run long prompts with a small ``batch_size``.
Prompts are not chunked.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks import Example
>>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
>>> tok = word_level_tokenizer([ex.prompt + ex.completion])
>>> est = attribution_sweep(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex], progress=False)
>>> est.effect.shape, est.metric, est.graddrop is None
(torch.Size([2, 4]), 'logprob (attribution)', True)
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import torch
from jaxtyping import Bool, Float
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
from rhlens.interventions.attribution_graddrop import DropGate, combine_dropped, dropped_estimates
from rhlens.interventions.compat import check_compatible
from rhlens.interventions.patching import PositionRule, check_positions, column_mask
from rhlens.interventions.results import PatchSweep
from rhlens.interventions.sweep import _capture_pass

ATTRIBUTION = "logprob (attribution)"


@dataclass
class AttributionSweep(PatchSweep):
    """A :class:`PatchSweep` of first-order estimates, with AtP*'s gradient-dropout scores when
    asked for (``attribution_sweep(..., gradient_dropout=True)``).

    Attributes:
        dropped: ``[n_layers (dropped), n_layers, n_heads, n_examples]`` or ``None``: entry
            ``[d, l, h]`` is head ``LlHh``'s estimate with the gradient through block ``d``'s
            residual contributions (attention and MLP outputs) set to zero. ``d == l`` is 0 (the
            head's own output is blocked); ``d < l`` equals the plain estimate.

    >>> s = AttributionSweep(baseline=torch.zeros(1), patched=torch.ones(2, 1, 1),
    ...                      dropped=torch.tensor([[[[0.0]], [[1.0]]], [[[-3.0]], [[0.0]]]]))
    >>> s.graddrop
    tensor([[3.],
            [1.]])
    """

    dropped: Float[Tensor, "drop_layer layer head example"] | None = None

    @property
    def graddrop(self) -> Float[Tensor, "layer head"] | None:
        """AtP*'s GradDrop score ``[n_layers, n_heads]`` (a magnitude, for ranking heads to verify):
        the mean over the ``n_layers - 1`` dropped blocks other than the head's own of
        ``|mean over examples of dropped[d]|``; ``None`` without gradient dropout."""
        return None if self.dropped is None else combine_dropped(self.dropped.mean(dim=-1))


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


class _Stop(Exception):
    """Raised by the source's last ``hook_z`` capture: nothing after it is needed."""


def _source_z(source: Any, batch: Any, decode_from: Tensor, layers: list[int]) -> dict[int, Tensor]:
    """The source's ``hook_z`` ``{layer: [batch, pos, head, d_head]}``; a HookedTransformer stops
    right after the last layer's ``hook_z`` (no output projection, MLP or norm after it)."""
    if model_kind(source) != "hooked":
        return _capture_pass(source, batch, decode_from, [(0, batch.tokens.shape[1])], "z", layers)
    store: dict[int, Tensor] = {}

    def capture(layer: int):
        def hook(z: Tensor, hook: Any) -> None:
            store[layer] = z.detach()  # nothing later in the pass writes to it
            if layer == layers[-1]:
                raise _Stop

        return hook

    with hooks(source, [(hook_name("z", l), capture(l)) for l in layers]), contextlib.suppress(_Stop):
        final_residual(source, batch.tokens, attention_mask=batch.attention_mask, prepend_bos=False)
    return store


def _head_estimates(
    src: dict[int, Tensor], tgt: dict[int, Tensor], grads: dict[int, Tensor], where: Bool[Tensor, "batch pos 1 1"]
) -> dict[int, Float[Tensor, "head batch"]]:
    """Per layer in ``grads``: ``sum over positions and d_head of (src - tgt) * grad`` ``[head, batch]``."""
    with torch.no_grad():
        return {l: ((src[l].to(g.dtype) - tgt[l]) * where * g).double().sum(dim=(1, 3)).T.cpu() for l, g in grads.items()}


def _target_pass(target: Any, batch: Any, encs: Sequence[Any], layers: list[int], gate: DropGate | None):
    """One target forward with a graph and its backward(s): ``(per-row log-prob [batch], hook_z
    {layer: [batch, pos, head, d_head]}, gradients {layer: same})`` and, with ``gate``, the
    gradients with each block's output dropped (:func:`dropped_estimates`)."""
    zs: dict[int, Tensor] = {}

    def mark(layer: int):
        def hook(z: Tensor, hook: Any) -> Tensor:
            if not z.requires_grad:  # the first layer: nothing before it needs a gradient
                z = z.detach().requires_grad_(True)
            zs[layer] = z  # d(metric)/dz is the total derivative through every later layer
            return z

        return hook

    device = model_device(target)
    predicts = engine.answer_targets(batch, encs).to(device)
    gold = torch.roll(batch.tokens, -1, dims=1)[predicts]
    fwd = [(hook_name("z", l), mark(l)) for l in layers] + (gate.hooks(layers) if gate else [])
    with hooks(target, fwd):
        logits = _answer_logits(target, batch, predicts)
    lp = logits.float().log_softmax(-1).gather(-1, gold[:, None].to(logits.device))[:, 0]
    per_row = torch.zeros(len(encs), dtype=lp.dtype, device=lp.device).index_add(0, predicts.nonzero()[:, 0], lp)
    total = per_row.sum()
    grads = dict(zip(layers, torch.autograd.grad(total, [zs[l] for l in layers], retain_graph=gate is not None)))
    tgt = {l: z.detach() for l, z in zs.items()}
    drops = gate.backwards(total, zs, layers) if gate else None
    return per_row.detach(), tgt, grads, drops


def attribution_sweep(
    source: Any,
    target: Any,
    examples: Sequence[Any],
    *,
    positions: PositionRule = "all",
    batch_size: int = 4,
    gradient_dropout: bool = False,
    progress: bool = True,
) -> AttributionSweep:
    """Estimate every head's effect of patching ``source``'s ``hook_z`` into ``target`` alone.

    Args:
        source, target: models that pass :func:`rhlens.check_compatible`.
        examples: :class:`rhlens.tasks.Example` records (prompt + gold answer must fit the context).
        positions: where a head would be patched (as in :func:`rhlens.patch_heads`).
        batch_size: examples per forward (the backward holds one batch's graph).
        gradient_dropout: also compute AtP*'s GradDrop scores (:attr:`AttributionSweep.graddrop`;
            ``n_layers - 1`` extra backwards, see :mod:`rhlens.interventions.attribution_graddrop`).
        progress: a progress bar over batches.

    Returns:
        :class:`AttributionSweep` (a :class:`PatchSweep`) with ``metric="logprob (attribution)"``:
        ``baseline`` ``[n_examples]`` the unpatched target's answer log-prob, ``patched``
        ``[n_layers, n_heads, n_examples]`` the baseline plus each head's first-order estimate, so
        ``effect`` ``[n_layers, n_heads]`` (query heads) is the estimated mean change, comparable
        with :func:`rhlens.patch_sweep`'s; ``dropped`` with ``gradient_dropout``.
    """
    check_positions(positions)
    check_compatible(source, target)
    arch = architecture(target)
    layers = list(range(arch.n_layers))
    gate = DropGate(arch.n_layers) if gradient_dropout else None
    encoded = engine.encode(target, examples, what="attribution_sweep", with_answer=True, append_eos=False)
    pad = pad_id_of(tokenizer_of(target))
    device = model_device(target)
    n = len(examples)
    baseline = torch.zeros(n, dtype=torch.float64)
    estimate = torch.zeros(arch.n_layers, arch.n_heads, n, dtype=torch.float64)
    dropped = torch.zeros(arch.n_layers, arch.n_layers, arch.n_heads, n, dtype=torch.float64) if gate else None
    with engine.running([source]), _gradient_mode(target):
        for rows, batch in engine.batched(
            [e.tokens for e in encoded], pad_id=pad, device=device, batch_size=batch_size, progress=progress,
            desc="attribution",
        ):
            encs = [encoded[i] for i in rows]
            where = column_mask(positions, encs, batch.offsets.cpu(), batch.tokens.shape[1]).to(device)[:, :, None, None]
            with torch.inference_mode():
                src = _source_z(source, batch, engine.first_decoding_column(batch, encs), layers)
            per_row, tgt, grads, drops = _target_pass(target, batch, encs, layers, gate)
            baseline[rows] = per_row.double().cpu()
            for l, est in _head_estimates(src, tgt, grads, where).items():
                estimate[l][:, rows] = est
            if dropped is not None:
                dropped[:, :, :, rows] = dropped_estimates(estimate[:, :, rows], drops, lambda g: _head_estimates(src, tgt, g, where))
            del src, tgt, grads, drops
    return AttributionSweep(
        baseline=baseline.float(), patched=(baseline[None, None, :] + estimate).float(), metric=ATTRIBUTION,
        dropped=None if dropped is None else dropped.float(),
    )
