"""Attribution patching: every head's cross-model patching effect from two forwards and one backward.

Nanda's attribution patching (and Kramár et al. 2024, "AtP*") replaces the exact sweep of
:func:`rhlens.patch_sweep` (one patched run per head) with its first-order Taylor estimate around
the target's own run. With ``z`` a head's ``hook_z`` output (``[pos, d_head]`` per example) and
``M`` the target's teacher-forced answer log-prob (:func:`rhlens.evaluate`'s ``"logprob"``):

    effect(L, H) ~= sum over patched positions and d_head of (z_source - z_target) * dM/dz_target

where ``dM/dz_target`` is the *total* derivative (through every later layer) at the unpatched
target. Cost per batch of examples: one source forward (no gradient, stopped at the last layer's
``hook_z``), one target forward with a graph, one backward to the ``hook_z`` activations only
(weights get no gradients), under three forward-equivalents in all, for every head at once. The
last layer's output reaches the metric only at the answer's columns (the last ones, with left
padding), so both forwards prefill the columns before them (:func:`rhlens.adapter.prefill`: the
last layer computes only their keys and values) and run the last layer's queries, output and MLP
on the answer's columns alone; the last layer's ``dM/dz`` is exactly zero elsewhere.
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

Example: :func:`attribution_sweep`.
"""

import contextlib
from dataclasses import dataclass
from typing import Any, ClassVar, Iterator, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor

from rhlens import engine
from rhlens.adapter import (
    Model,
    architecture,
    final_residual,
    forward,
    hooks,
    logits_from_residual,
    model_kind,
    new_kv_cache,
    prefill,
)
from rhlens.adapter.fused import fused_attention
from rhlens.encoding import encode_for_model
from rhlens.interventions.capture import capture_activations
from rhlens.interventions.head_outputs import head_output_hooks
from rhlens.interventions.attribution_graddrop import DropGate, combine_dropped, dropped_estimates
from rhlens.interventions.compatibility import check_compatible
from rhlens.interventions.patching import PositionRule, check_positions, column_mask
from rhlens.interventions.results import PatchSweep

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

    EXAMPLE_AXES: ClassVar[dict[str, int]] = {**PatchSweep.EXAMPLE_AXES, "dropped": -1}
    dropped: Float[Tensor, "drop_layer layer head example"] | None = None

    @property
    def graddrop(self) -> Float[Tensor, "layer head"] | None:
        """AtP*'s GradDrop score ``[n_layers, n_heads]`` (a magnitude, for ranking heads to verify):
        the mean over the ``n_layers - 1`` dropped blocks other than the head's own of
        ``|mean over examples of dropped[d]|``; ``None`` without gradient dropout."""
        return None if self.dropped is None else combine_dropped(self.dropped.mean(dim=-1))


@contextlib.contextmanager
def _gradient_mode(model: Model) -> Iterator[None]:
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


def _answer_start(predicts: Bool[Tensor, "batch pos"]) -> int:
    """First column of the shortest suffix that holds every answer-predicting column (left padding
    puts them at the end), or 0 (the whole row) when that suffix is over half the width."""
    width = predicts.shape[1]
    start = int(predicts.any(dim=0).nonzero().min())
    return start if width - start <= width // 2 else 0


def _answer_logits(model: Model, batch: Any, predicts: Bool[Tensor, "batch pos"], start: int) -> Tensor:
    """Logits ``[n_answer_columns, d_vocab]`` at the ``predicts`` columns. A HookedTransformer
    prefills the columns before the answer's (:func:`rhlens.adapter.prefill`: the last block
    computes only their keys and values, since its output there reaches no answer logit), runs the
    rest to the final residual and unembeds only the answer's columns; a TransformerBridge runs in
    full."""
    if model_kind(model) != "hooked":
        return forward(model, batch.tokens, attention_mask=batch.attention_mask)[predicts]
    final = _final_residual_from(model, batch, start)
    return logits_from_residual(model, final[predicts[:, start:]][None])[0]


def _final_residual_from(model: Model, batch: Any, start: int) -> Float[Tensor, "batch rest d_model"]:
    """The final residual of columns ``start ..`` of ``batch`` (a HookedTransformer): the columns
    before ``start`` are prefilled into a KV cache (:func:`rhlens.adapter.prefill`), not run."""
    tokens, mask = batch.tokens, batch.attention_mask
    cache = None
    if start > 0:
        cache = new_kv_cache(model, tokens.shape[0])
        prefill(model, tokens[:, :start], attention_mask=mask[:, :start], past_kv_cache=cache)
    return final_residual(model, tokens[:, start:], attention_mask=mask[:, start:], past_kv_cache=cache, prepend_bos=False)


def _join(parts: list[Tensor], width: int) -> Tensor:
    """Column pieces ``[batch, piece, ...]`` joined to ``[batch, width, ...]``, zeros in front for
    the columns no piece covers (the last layer's prefilled ones)."""
    missing = width - sum(p.shape[1] for p in parts)
    if missing:
        parts = [parts[0].new_zeros(parts[0].shape[0], missing, *parts[0].shape[2:]), *parts]
    return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class _Marks:
    """The target's ``hook_z`` per layer, marked for gradients, in column pieces (one per forward
    call: the prefilled columns, then the rest; the last layer has no prefilled piece)."""

    def __init__(self, layers: list[int], width: int) -> None:
        self.layers, self.width = layers, width
        self.pieces: dict[int, list[Tensor]] = {l: [] for l in layers}

    def hooks(self) -> list[tuple[str, Any]]:
        def mark(layer: int, z: Tensor) -> Tensor:
            if not z.requires_grad:  # the first layer: nothing before it needs a gradient
                z = z.detach().requires_grad_(True)
            self.pieces[layer].append(z)  # d(metric)/dz: the total derivative through every later layer
            return z

        return head_output_hooks(self.layers, mark)

    def values(self) -> dict[int, Tensor]:
        """``{layer: [batch, pos, head, d_head]}``, detached (zeros where never computed)."""
        return {l: _join([z.detach() for z in ps], self.width) for l, ps in self.pieces.items()}

    def grad(self, total: Tensor, layers: list[int], retain: bool) -> dict[int, Tensor]:
        """``{layer: d(total)/dz [batch, pos, head, d_head]}`` for ``layers``."""
        flat = [(l, z) for l in layers for z in self.pieces[l]]
        got = torch.autograd.grad(total, [z for _, z in flat], retain_graph=retain, allow_unused=True)
        out: dict[int, list[Tensor]] = {l: [] for l in layers}
        for (l, z), g in zip(flat, got):
            out[l].append(torch.zeros_like(z) if g is None else g)
        return {l: _join(parts, self.width) for l, parts in out.items()}


class _Stop(Exception):
    """Raised by the source's last ``hook_z`` capture: nothing after it is needed."""


def _source_z(source: Model, batch: Any, decode_from: Tensor, layers: list[int], start: int) -> dict[int, Tensor]:
    """The source's ``hook_z`` ``{layer: [batch, pos, head, d_head]}``. A HookedTransformer
    prefills the columns before ``start`` (so the last layer's ``hook_z`` there is left zero: its
    gradient there is zero, see :func:`_answer_logits`) and stops right after the last layer's
    ``hook_z`` (no output projection, MLP or norm after it)."""
    width = batch.tokens.shape[1]
    if model_kind(source) != "hooked":
        return capture_activations(source, batch, decode_from, [(0, width)], "z", layers)
    store: dict[int, list[Tensor]] = {l: [] for l in layers}

    def capture(layer: int, z: Tensor) -> None:
        store[layer].append(z.detach())  # nothing later in the pass writes to it
        if layer == layers[-1]:
            raise _Stop

    with hooks(source, head_output_hooks(layers, capture)), contextlib.suppress(_Stop):
        _final_residual_from(source, batch, start)
    return {l: _join(parts, width) for l, parts in store.items()}


def _head_estimates(
    src: dict[int, Tensor], tgt: dict[int, Tensor], grads: dict[int, Tensor], where: Bool[Tensor, "batch pos 1 1"]
) -> dict[int, Float[Tensor, "head batch"]]:
    """Per layer in ``grads``: ``sum over positions and d_head of (src - tgt) * grad`` ``[head, batch]``."""
    with torch.no_grad():
        return {l: ((src[l].to(g.dtype) - tgt[l]) * where * g).double().sum(dim=(1, 3)).T.cpu() for l, g in grads.items()}


def _target_pass(
    target: Model, batch: Any, predicts: Bool[Tensor, "batch pos"], layers: list[int], gate: DropGate | None, start: int
):
    """One target forward with a graph and its backward(s): ``(per-row log-prob [batch], hook_z
    {layer: [batch, pos, head, d_head]}, gradients {layer: same})`` and, with ``gate``, the
    gradients with each block's output dropped (:meth:`DropGate.backwards`)."""
    gold = torch.roll(batch.tokens, -1, dims=1)[predicts]
    marks = _Marks(layers, batch.tokens.shape[1])
    with hooks(target, marks.hooks() + (gate.hooks(layers) if gate else [])):
        logits = _answer_logits(target, batch, predicts, start)
    lp = logits.float().log_softmax(-1).gather(-1, gold[:, None].to(logits.device))[:, 0]
    per_row = torch.zeros(predicts.shape[0], dtype=lp.dtype, device=lp.device).index_add(0, predicts.nonzero()[:, 0], lp)
    total = per_row.sum()
    grads = marks.grad(total, layers, retain=gate is not None)
    drops = gate.backwards(lambda want, retain: marks.grad(total, want, retain), layers) if gate else None
    return per_row.detach(), marks.values(), grads, drops


def attribution_sweep(
    source: Model | None,
    target: Model,
    examples: Sequence[Any],
    *,
    positions: PositionRule = "all",
    batch_size: int = 4,
    gradient_dropout: bool = False,
    progress: bool = True,
) -> AttributionSweep:
    """Estimate every head's effect of patching ``source``'s ``hook_z`` into ``target`` alone.

    Args:
        source, target: models that pass :func:`rhlens.check_compatible`; ``source=None`` patches
            zeros in (each head's first-order zero-knockout effect, no source pass).
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

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> tok = word_level_tokenizer([ex.prompt + ex.completion])
    >>> est = attribution_sweep(tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2), [ex], progress=False)
    >>> est.effect.shape, est.metric, est.graddrop is None
    (torch.Size([2, 4]), 'logprob (attribution)', True)
    >>> len(est.top(3))  # the heads to confirm with rhlens.patch_sweep(..., heads=est.top(3))
    3
    """
    check_positions(positions)
    if source is not None:
        check_compatible(source, target)
    arch = architecture(target)
    layers = list(range(arch.n_layers))
    gate = DropGate(arch.n_layers) if gradient_dropout else None
    encoded = encode_for_model(target, examples, what="attribution_sweep", with_answer=True, append_eos=False)
    n = len(examples)
    baseline = torch.zeros(n, dtype=torch.float64)
    estimate = torch.zeros(arch.n_layers, arch.n_heads, n, dtype=torch.float64)
    dropped = torch.zeros(arch.n_layers, arch.n_layers, arch.n_heads, n, dtype=torch.float64) if gate else None
    with engine.running([source] if source is not None else []), _gradient_mode(target):  # batches under autograd
        for one in engine.batches([m for m in (source, target) if m is not None], [e.tokens for e in encoded],
                                  batch_size=batch_size, progress=progress, desc="attribution", encoded=encoded,
                                  analysis=[]):
            rows, batch, encs = one.rows, one.padded, one.encoded
            predicts = engine.answer_targets(batch, encs)
            start = _answer_start(predicts)
            where = column_mask(positions, encs, batch.offsets.cpu(), batch.tokens.shape[1]).to(predicts.device)[:, :, None, None]
            src = None
            if source is not None:
                with torch.inference_mode():
                    src = _source_z(source, batch, engine.first_decoding_column(batch, encs), layers, start)
            per_row, tgt, grads, drops = _target_pass(target, batch, predicts, layers, gate, start)
            src = src if src is not None else {l: torch.zeros_like(z) for l, z in tgt.items()}
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
