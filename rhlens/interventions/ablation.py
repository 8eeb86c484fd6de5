"""Head knockout: zero, mean or uniform-attention ablation of chosen heads, and its effect.

Modes (heads are query heads; under grouped-query attention the other query heads of the same
key/value group are untouched):

- ``"zero"``: the head's output before the output projection (``hook_z``, ``[batch, pos, head,
  d_head]``) is set to 0.
- ``"mean"``: ``hook_z`` is replaced by its mean over every real (non-padding) position of the
  ``reference`` examples' prompts, computed once when the context is entered.
- ``"uniform"``: Wu et al.'s masking: the head's pre-softmax scores are set to 0 wherever they are
  not masked, so it attends uniformly over its causal prefix, padding excluded. (On a model the
  fused path supports this is done by zeroing the head's rotated query, which makes every score
  exactly 0 on the fused and the eager path alike; see
  :func:`rhlens.adapter.uniform_attention_hooks`.)

Scope (where the knockout applies):

- ``scope="decode"`` (the default, Wu et al.'s ``needle_in_haystack_with_mask.py``): only at
  decoding steps, i.e. the query rows of the last prompt token and of every generated token; the
  prompt's prefill is left intact, so every later layer's keys and values over the prompt are the
  intact model's. Teacher-forced (``metric="logprob"``): the rows that predict answer tokens.
- ``scope="all"``: at every position, prefill included (the knockout then also changes the
  prompt's keys and values in later layers: up to 1.35 nats more on stories260K with 4 heads).

The default is ``"decode"`` because it is what Wu et al. measure (a head's role in retrieving
from an intact context at answer time) and what rhlens's knockout numbers are compared with.
Decoding rows are known to the run engine (:func:`rhlens.engine.current_step`): inside
:func:`rhlens.evaluate`, :func:`rhlens.greedy_decode`, :func:`rhlens.retrieval_scores` and the
other analyzers. A bare ``model(tokens)`` has no decoding steps of its own and is knocked out at
every position whatever the scope.

Examples: :func:`knockout`, :func:`knockout_effect`.
"""

import contextlib
from typing import Any, Iterable, Iterator, Sequence

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from typing_extensions import Unpack

from rhlens import engine
from rhlens.adapter import Model, architecture, hooks, uniform_attention_hooks
from rhlens.encoding import encode_for_model
from rhlens.evaluation import EvalResult, RunKwargs, RunOptions, baseline_or_evaluate, evaluate
from rhlens.heads import Head, HeadSet, as_head_set
from rhlens.interventions.head_outputs import head_output_hooks, overwrite_heads
from rhlens.interventions.head_sets import RETRIEVAL_THRESHOLD, control_exclusion, heads_by_layer
from rhlens.interventions.options import KNOCKOUT_MODES, KNOCKOUT_SCOPES
from rhlens.interventions.results import KnockoutEffect

# knockout() and knockout_effect() take mode and scope as str (not the Literal types) and check them
# against KNOCKOUT_MODES / KNOCKOUT_SCOPES themselves, so a wrong value gets their message.


def mean_head_outputs(
    model: Model,
    reference: Sequence[Any],
    layers: Iterable[int],
    *,
    batch_size: int = 8,
) -> dict[int, Float[Tensor, "head d_head"]]:
    """Mean ``hook_z`` per layer ``{layer: [n_heads, d_head]}`` over every real position of the
    ``reference`` examples' prompts (BOS included, padding excluded), float32."""
    layers = sorted(set(layers))
    if not reference:
        raise ValueError("knockout(mode='mean') needs reference examples: knockout(model, heads, 'mean', reference=examples)")
    encoded = encode_for_model(model, reference, what="knockout(mode='mean') reference", with_answer=False)
    sums: dict[int, Tensor] = {}
    count = 0
    state: dict[str, Tensor] = {}

    def capture(layer: int, z: Tensor) -> None:
        s = z[state["mask"]].float().sum(dim=0)  # [head, d_head] over real positions
        sums[layer] = sums[layer] + s if layer in sums else s

    with hooks(model, head_output_hooks(layers, capture)):
        for batch in engine.batches([model], [e.tokens for e in encoded], batch_size=batch_size, progress=False,
                                    desc="means", encoded=encoded):
            padded = batch.padded
            state["mask"] = padded.attention_mask.bool()
            batch.runner(cache=False)(padded.tokens, padded.attention_mask)
            count += int(padded.attention_mask.sum())
    return {l: sums[l] / count for l in layers}


def _rows(scope: str):
    """``rows(q_len, device)`` for the hooks: the decoding rows of the engine step in progress
    (``None``, every row, for ``scope="all"`` or outside the engine)."""

    def rows(q_len: int, device: Any) -> Bool[Tensor, "batch q"] | None:
        step = engine.current_step()
        if scope == "all" or step is None:
            return None
        return step.decoding(q_len, device)

    return rows


def _replace_outputs(layers: dict[int, list[int]], means: dict[int, Tensor], rows):
    """``fn(layer, z)`` for :func:`head_output_hooks`: ``hook_z`` of the layer's heads replaced by
    their mean ``[n_heads, d_head]`` (zeros when the layer has none) at the rows in scope."""

    def fn(layer: int, z: Tensor) -> Tensor:
        idx, value = layers[layer], means.get(layer)
        new = torch.zeros_like(z[:, :, idx]) if value is None else value[idx].to(device=z.device, dtype=z.dtype).expand_as(z[:, :, idx])
        return overwrite_heads(z, idx, new, rows(z.shape[1], z.device))

    return fn


@contextlib.contextmanager
def knockout(
    model: Model,
    heads: "Iterable[Head | str | tuple[int, int]]",
    mode: str = "zero",
    reference: Sequence[Any] | None = None,
    *,
    scope: str = "decode",
    batch_size: int = 8,
) -> Iterator[Any]:
    """Knock ``heads`` out for the duration of a ``with`` block (see the module docstring).

    Args:
        model: a HookedTransformer or TransformerBridge.
        heads: query heads (``HeadSet``, ``"L4H4"`` labels or ``(layer, head)`` tuples).
        mode: ``"zero"``, ``"mean"`` or ``"uniform"``.
        reference: examples whose prompts give the ``"mean"`` activations (required for it,
            ignored otherwise).
        scope: ``"decode"`` (Wu et al.: decoding steps only, prefill intact) or ``"all"``.
        batch_size: prompts per forward when computing the means.

    Yields the model. Hooks are removed on exit, also when the body raises; every forward inside
    (including :func:`rhlens.greedy_decode`'s cached decoding) is knocked out within ``scope``.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.adapter import count_hooks, forward
    >>> tok = word_level_tokenizer(["a b c d"])
    >>> model = tiny_llama(tokenizer=tok)
    >>> tokens = model.to_tokens("a b c d")
    >>> with knockout(model, ["L0H1", "L1H0"], mode="uniform", scope="all"):
    ...     knocked = forward(model, tokens)
    >>> count_hooks(model), bool((knocked - forward(model, tokens)).abs().max() > 0)
    (0, True)
    """
    if mode not in KNOCKOUT_MODES:
        raise ValueError(f"Unknown knockout mode {mode!r}; use one of {', '.join(KNOCKOUT_MODES)}")
    if scope not in KNOCKOUT_SCOPES:
        raise ValueError(f"Unknown knockout scope {scope!r}; use 'decode' (Wu et al.: decoding steps only) or 'all'")
    layers = heads_by_layer(model, heads, what="knockout heads")
    means = mean_head_outputs(model, reference or [], layers, batch_size=batch_size) if mode == "mean" else {}
    rows = _rows(scope)
    if mode == "uniform":
        fwd = [h for layer, idx in sorted(layers.items()) for h in uniform_attention_hooks(model, layer, idx, rows)]
    else:
        fwd = head_output_hooks(layers, _replace_outputs(layers, means, rows))
    with hooks(model, fwd):
        yield model


def random_heads(
    model: Model,
    k: int,
    exclude: "Iterable[Head | str | tuple[int, int]] | None" = None,
    seed: int = 0,
    *,
    scores: Any = None,
    threshold: float = RETRIEVAL_THRESHOLD,
) -> HeadSet:
    """``k`` random query heads of ``model`` (a control for a knockout or a patch), none excluded.

    Args:
        exclude: heads never drawn. Default: every head scoring above ``threshold`` in ``scores``
            (Wu et al. exclude their top retrieval heads from the controls). One of ``exclude``
            and ``scores`` is required; ``exclude=()`` excludes nothing.
        seed: the draw's seed.
        scores: the reference model's retrieval scores (``HeadScores`` or ``[n_layers, n_heads]``).
        threshold: the retrieval threshold (Wu et al.: 0.1).

    >>> import torch
    >>> from rhlens.models import tiny_llama
    >>> model = tiny_llama(n_layers=2, n_heads=4)
    >>> scores = torch.zeros(2, 4); scores[0, 0] = 0.9
    >>> drawn = random_heads(model, 7, scores=scores)
    >>> len(drawn), Head(0, 0) in drawn
    (7, False)
    """
    arch = architecture(model)
    excluded = control_exclusion(exclude=exclude, scores=scores, threshold=threshold, what="random_heads")
    return HeadSet.random(arch.n_layers, arch.n_heads, k, exclude=excluded, seed=seed)


def knockout_effect(
    model: Model,
    examples: Sequence[Any],
    heads: "Iterable[Head | str | tuple[int, int]]",
    *,
    mode: str = "zero",
    scope: str = "decode",
    reference: Sequence[Any] | None = None,
    baseline: EvalResult | None = None,
    n_random: int = 0,
    exclude: "Iterable[Head | str | tuple[int, int]] | None" = None,
    scores: Any = None,
    threshold: float = RETRIEVAL_THRESHOLD,
    seed: int = 0,
    options: RunOptions | None = None,
    **run: Unpack[RunKwargs],
) -> KnockoutEffect:
    """The metric on ``examples`` with and without knocking ``heads`` out (and, optionally, with
    random control heads knocked out instead).

    Args:
        baseline: the intact model's result on the same examples and metric, to reuse across
            several head sets (computed when ``None``).
        mode, scope, reference: as in :func:`knockout`.
        n_random: random control sets of ``len(heads)`` heads (seeds ``seed, seed + 1, ...``),
            each knocked out alone; drawn outside ``heads`` and ``exclude``, or outside ``heads``
            and every head above ``threshold`` in ``scores`` (one grid or a list;
            :func:`rhlens.interventions.head_sets.control_exclusion` says the rule). ``exclude``
            or ``scores`` is required when ``n_random > 0``.
        options: a :class:`rhlens.RunOptions`, or its fields as keywords (``metric``,
            ``max_new_tokens``, ``batch_size``, ``chunk_size``, ``progress``), as in
            :func:`rhlens.evaluate`.

    Returns:
        :class:`KnockoutEffect` with ``baseline``, ``knocked`` and ``delta`` (knocked - baseline),
        and ``controls`` / ``control_heads`` / ``control_delta`` for the random sets.

    Raises:
        ValueError: ``heads`` is empty (an empty knockout's change is 0.0 by construction, almost
            surely a mistake); ``n_random`` is negative.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]))
    >>> eff = knockout_effect(model, [ex], ["L0H0", "L1H2"], metric="logprob", n_random=2, exclude=(),
    ...                       progress=False)
    >>> eff.heads, len(eff.control_heads), eff.delta == eff.knocked.score - eff.baseline.score
    (HeadSet([L0H0, L1H2]), 2, True)
    >>> any(h in eff.heads for c in eff.control_heads for h in c)   # controls avoid the knocked heads
    False
    """
    opts = RunOptions.merge(options, run, what="knockout_effect")
    hs = as_head_set(heads)
    if not hs:
        raise ValueError("knockout_effect: heads is empty, so nothing would be knocked out and the change would be "
                         "0.0 by construction; pass at least one head (for the intact model's score alone, call "
                         "rhlens.evaluate)")
    if n_random < 0:
        raise ValueError(f"n_random must be >= 0, got {n_random}")
    control_sets, excluded = [], HeadSet()
    if n_random:
        arch = architecture(model)
        excluded = control_exclusion(hs, exclude=exclude, scores=scores, threshold=threshold,
                                     n_total=arch.n_layers * arch.n_heads, what="knockout_effect(n_random > 0)")
        control_sets = [random_heads(model, len(hs), excluded, seed + i) for i in range(n_random)]
    baseline = baseline_or_evaluate(baseline, model, examples, opts, what="knockout_effect")

    def knocked_out(head_set: HeadSet) -> EvalResult:
        with knockout(model, head_set, mode, reference, scope=scope, batch_size=opts.batch_size):
            return evaluate(model, examples, options=opts)

    return KnockoutEffect(
        baseline=baseline, knocked=knocked_out(hs), heads=hs, mode=mode, scope=scope,
        controls=[knocked_out(c) for c in control_sets], control_heads=control_sets, control_excluded=excluded,
    )
