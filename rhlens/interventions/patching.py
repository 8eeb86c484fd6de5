"""Cross-model activation patching: write a source model's head outputs into a target model.

For each example, the source and the target run *in lockstep on the same tokens*: at every
forward, the source runs first and its ``hook_z`` (``[batch, pos, head, d_head]``, per query
head, before the output projection) is captured at the chosen heads; the target then runs on the
same tokens and those heads' ``hook_z`` is overwritten with the source's at the chosen positions.
So the source always sees exactly the sequence the target is evaluated on:

- teacher-forced metric (``metric="logprob"``): both run on prompt + gold answer; the target's
  log-probability of the gold answer is scored;
- text metrics (``None`` = task default, or a callable): the target decodes greedily; at each
  decoding step the source is fed the token the *target* chose (its own KV cache), so patched
  activations always belong to the target's own continuation.

Positions are in each example's own token coordinates (0 is BOS), padding never patched:

- ``"all"``: every position, prompt and answer (generated tokens included);
- ``"prompt"``: the prompt tokens ``[0, prompt_len)``;
- ``"answer"``: the positions whose outputs predict answer tokens: the last prompt position and
  every later one (``[prompt_len - 1, ...)``; in generation, each decoding step);
- ``"needle"``: the needle tokens (:attr:`EncodedExample.needle_spans`);
- a callable ``(encoded: EncodedExample, n_positions: int) -> Bool[Tensor, "n_positions"]``
  (``encoded`` holds prompt and gold answer teacher-forced, the prompt alone when generating;
  ``n_positions`` is the number of positions that run: ``len(encoded.tokens)`` teacher-forced,
  ``prompt_len + max_new_tokens`` when generating).

Both models run through :mod:`rhlens.engine` in lockstep (:func:`rhlens.evaluation.run_metric`),
the same code, tokens and kernels as the unpatched :func:`rhlens.evaluate` baseline: ``hook_z``
fires on the fused attention path, so patching a model into an identical copy changes nothing,
in any dtype.

Cost: one source forward per target forward (twice an evaluation); memory: the captured
``hook_z`` of one chunk at the patched heads.

Example: :func:`patch_heads`.
"""

import contextlib
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from jaxtyping import Bool
from torch import Tensor
from typing_extensions import Unpack

from rhlens import engine
from rhlens.adapter import Model, hooks
from rhlens.encoding import EncodedExample, PaddedBatch
from rhlens.evaluation import EvalResult, RunKwargs, RunOptions, baseline_or_evaluate, run_metric
from rhlens.heads import Head, as_head_set
from rhlens.interventions.head_outputs import head_output_hooks, overwrite_heads
from rhlens.interventions.head_sets import heads_by_layer
from rhlens.interventions.compatibility import check_compatible
from rhlens.interventions.options import PATCH_POSITIONS
from rhlens.interventions.results import PatchResult

# A name of rhlens.interventions.options.PATCH_POSITIONS (typed str, so a wrong name gets
# check_positions' message, not the run-time type checker's) or a callable.
PositionRule = Union[str, Callable[[EncodedExample, int], Tensor]]


def position_mask(rule: PositionRule, enc: EncodedExample, n_positions: int) -> Bool[Tensor, "n_positions"]:
    """Bool ``[n_positions]`` over the example's own positions: True where heads are patched."""
    out = torch.zeros(n_positions, dtype=torch.bool)
    if callable(rule):
        got = torch.as_tensor(rule(enc, n_positions)).to(torch.bool).cpu()
        if got.shape != (n_positions,):
            raise ValueError(
                f"positions callable returned shape {tuple(got.shape)} for example {enc.index}; expected ({n_positions},)"
            )
        return got
    if rule == "all":
        out[:] = True
    elif rule == "prompt":
        out[: enc.prompt_len] = True
    elif rule == "answer":
        out[max(enc.prompt_len - 1, 0) :] = True
    elif rule == "needle":
        if not enc.needle_spans:
            raise ValueError(f"positions='needle' but example {enc.index} has no needle span")
        for s, e in enc.needle_spans:
            out[s:e] = True
    else:
        raise ValueError(f"Unknown positions {rule!r}: use one of {', '.join(PATCH_POSITIONS)} or a callable")
    return out


def column_mask(
    rule: PositionRule, encoded: Sequence[EncodedExample], offsets: Tensor, width: int
) -> Bool[Tensor, "batch width"]:
    """:func:`position_mask` per row, shifted by each row's left padding into ``width`` columns."""
    out = torch.zeros(len(encoded), width, dtype=torch.bool)
    for b, enc in enumerate(encoded):
        off = int(offsets[b])
        out[b, off:] = position_mask(rule, enc, width - off)
    return out


def rule_name(rule: PositionRule) -> str:
    return rule if isinstance(rule, str) else getattr(rule, "__name__", "custom")


def check_positions(positions: PositionRule) -> None:
    if isinstance(positions, str) and positions not in PATCH_POSITIONS:
        raise ValueError(f"Unknown positions {positions!r}: use one of {', '.join(PATCH_POSITIONS)} or a callable")


def _step_end() -> int:
    step = engine.current_step()
    if step is None:
        raise RuntimeError("patch_heads' hooks run only inside rhlens's run engine (rhlens.engine.Runner)")
    return step.end


class HeadPatcher:
    """:meth:`capture` (the source's ``hook_z``) and :meth:`patch` (the target's), sharing one
    store, for :func:`rhlens.interventions.head_outputs.head_output_hooks`.

    ``cols`` ``[batch, width]`` says where to patch; each hook sees ``pos`` rows ending at the
    engine step's end column (the source runs first on the same step; should it have run more
    rows, the last ``pos`` are used).
    """

    def __init__(self, layers: dict[int, list[int]], cols: Bool[Tensor, "batch width"]):
        self.layers = layers
        self.cols = cols
        self.store: dict[int, tuple[int, Tensor]] = {}

    def capture(self, layer: int, z: Tensor) -> None:
        """Source side: keep this step's ``hook_z`` of the patched heads."""
        self.store[layer] = (_step_end(), z[:, :, self.layers[layer]].detach().clone())

    def patch(self, layer: int, z: Tensor) -> Tensor:
        """Target side: the captured source values written over the patched heads."""
        end, pos = _step_end(), z.shape[1]
        if layer not in self.store:
            raise RuntimeError(f"patch_heads: no source activation captured for layer {layer}")
        src_end, src = self.store.pop(layer)
        if src_end != end or src.shape[1] < pos or src.shape[0] != z.shape[0]:
            raise RuntimeError(
                f"patch_heads: source and target fell out of step at layer {layer} "
                f"(source ended at column {src_end} with shape {tuple(src.shape)}, target at {end} with {tuple(z.shape)})"
            )
        src = src[:, src.shape[1] - pos :].to(device=z.device, dtype=z.dtype)
        return overwrite_heads(z, self.layers[layer], src, self.cols[:, end - pos : end].to(z.device))


def lockstep_setup(source: Model, target: Model, layers: dict[int, list[int]], rule: PositionRule) -> engine.BatchSetup:
    """The per-batch setup of a patched run: the source captures and the target is patched at
    ``rule``'s positions (hooks removed after the batch, also on error)."""

    @contextlib.contextmanager
    def setup(encoded: Sequence[EncodedExample], padded: PaddedBatch, n_columns: int):
        patcher = HeadPatcher(layers, column_mask(rule, encoded, padded.offsets.cpu(), n_columns))
        with hooks(source, head_output_hooks(layers, patcher.capture)), hooks(target, head_output_hooks(layers, patcher.patch)):
            yield

    return setup


def patch_heads(
    source: Model,
    target: Model,
    examples: Sequence[Any],
    heads: "Iterable[Head | str | tuple[int, int]]",
    *,
    positions: PositionRule = "all",
    baseline: EvalResult | None = None,
    options: RunOptions | None = None,
    **run: Unpack[RunKwargs],
) -> PatchResult:
    """Patch ``source``'s outputs of ``heads`` into ``target`` and score the target.

    Args:
        source: the model whose head outputs are written (e.g. the real-data model).
        target: the model that is evaluated (e.g. a synthetic-data model). Must pass
            :func:`check_compatible` with ``source``.
        examples: :class:`rhlens.tasks.Example` records.
        heads: query heads to patch.
        positions: ``"all"``, ``"prompt"``, ``"answer"``, ``"needle"`` or a callable (see the module
            docstring).
        baseline: the unpatched target's result with the same metric (computed when ``None``).
        options: a :class:`rhlens.RunOptions`, or its fields as keywords (``metric``,
            ``max_new_tokens``, ``batch_size``, ``chunk_size``, ``progress``), as in
            :func:`rhlens.evaluate`.

    Returns:
        :class:`PatchResult` with ``baseline``, ``patched``, ``delta`` and per-example values.

    Raises:
        IncompatibleModelsError: listing every difference between the two models.
        ValueError: ``heads`` is empty (the change would be 0.0 by construction).

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> tok = word_level_tokenizer([ex.prompt + ex.completion])
    >>> source, target = tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2)
    >>> res = patch_heads(source, target, [ex], ["L0H0", "L1H2"], metric="logprob", progress=False)
    >>> res.heads, res.delta == res.patched.score - res.baseline.score
    (HeadSet([L0H0, L1H2]), True)
    """
    opts = RunOptions.merge(options, run, what="patch_heads")
    check_compatible(source, target)
    check_positions(positions)
    hs = as_head_set(heads)
    if not hs:
        raise ValueError("patch_heads: heads is empty, so nothing would be patched and the change would be 0.0 by "
                         "construction; pass at least one head (for the target's own score, call rhlens.evaluate)")
    layers = heads_by_layer(target, hs, what="patched heads")
    baseline = baseline_or_evaluate(baseline, target, examples, opts, what="patch_heads")
    patched = run_metric([source, target], examples, opts, setup=lockstep_setup(source, target, layers, positions), what="patch_heads")
    return PatchResult(baseline=baseline, patched=patched, heads=hs, positions=rule_name(positions))
