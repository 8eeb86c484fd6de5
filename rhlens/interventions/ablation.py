"""Head knockout: zero, mean or uniform-attention ablation of chosen heads, and its effect.

Modes (heads are query heads; under grouped-query attention the other query heads of the same
key/value group are untouched):

- ``"zero"``: the head's output before the output projection (``hook_z``, ``[batch, pos, head,
  d_head]``) is set to 0 at every position.
- ``"mean"``: ``hook_z`` is replaced by its mean over every real (non-padding) position of the
  ``reference`` examples' prompts, computed once when the context is entered.
- ``"uniform"``: Wu et al.'s masking: the head's pre-softmax scores (``hook_attn_scores``) are set
  to 0 wherever they are not masked, so it attends uniformly over its causal prefix, padding
  excluded. With the KV cache, a chunk's query rows see cached and current keys alike, so the
  distribution is over the whole prefix there too.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.adapter import count_hooks, forward
>>> tok = word_level_tokenizer(["a b c d"])
>>> model = tiny_llama(tokenizer=tok)
>>> tokens = model.to_tokens("a b c d")
>>> with knockout(model, ["L0H1", "L1H0"], mode="uniform"):
...     knocked = forward(model, tokens)
>>> count_hooks(model), bool((knocked - forward(model, tokens)).abs().max() > 0)
(0, True)
"""

import contextlib
from typing import Any, Iterable, Iterator, Literal, Sequence

import torch
from jaxtyping import Float
from torch import Tensor

from rhlens.adapter import analysis_mode, architecture, forward, hook_name, hooks, model_device, tokenizer_of
from rhlens.encoding import pad_id_of, pad_left
from rhlens.heads import Head, HeadSet, as_head_set
from rhlens.interventions._common import heads_by_layer, masked_scores
from rhlens.interventions.results import EvalResult, KnockoutEffect

Mode = Literal["zero", "mean", "uniform"]
MODES = ("zero", "mean", "uniform")


def mean_head_outputs(
    model: Any,
    reference: Sequence[Any],
    layers: Iterable[int],
    *,
    batch_size: int = 8,
) -> dict[int, Float[Tensor, "head d_head"]]:
    """Mean ``hook_z`` per layer ``{layer: [n_heads, d_head]}`` over every real position of the
    ``reference`` examples' prompts (BOS included, padding excluded), float32."""
    from rhlens.evaluation import batches, encode_prompts

    layers = sorted(set(layers))
    if not reference:
        raise ValueError("knockout(mode='mean') needs reference examples: knockout(model, heads, 'mean', reference=examples)")
    encoded = encode_prompts(model, reference)
    pad = pad_id_of(tokenizer_of(model))
    device = model_device(model)
    sums: dict[int, Tensor] = {}
    count = 0
    state: dict[str, Tensor] = {}

    def capture(layer: int):
        def hook(z: Tensor, hook: Any) -> None:
            s = z[state["mask"]].float().sum(dim=0)  # [head, d_head] over real positions
            sums[layer] = sums[layer] + s if layer in sums else s

        return hook

    with analysis_mode(model), hooks(model, [(hook_name("z", l), capture(l)) for l in layers]):
        for rows in batches(len(encoded), batch_size):
            batch = pad_left([encoded[i].tokens for i in rows], pad, device=device)
            state["mask"] = batch.attention_mask.bool()
            forward(model, batch.tokens, attention_mask=batch.attention_mask)
            count += int(batch.attention_mask.sum())
    return {l: sums[l] / count for l in layers}


def _zero_hook(idx: list[int]):
    def hook(z: Tensor, hook: Any) -> Tensor:
        z = z.clone()
        z[:, :, idx] = 0
        return z

    return hook


def _mean_hook(idx: list[int], mean: Tensor):
    def hook(z: Tensor, hook: Any) -> Tensor:
        z = z.clone()
        z[:, :, idx] = mean[idx].to(device=z.device, dtype=z.dtype)
        return z

    return hook


def _uniform_hook(idx: list[int]):
    def hook(scores: Tensor, hook: Any) -> Tensor:
        sel = scores[:, idx]  # [batch, n_sel, q, k]
        scores = scores.clone()
        scores[:, idx] = torch.where(masked_scores(sel), sel, torch.zeros_like(sel))
        return scores

    return hook


@contextlib.contextmanager
def knockout(
    model: Any,
    heads: "Iterable[Head | str | tuple[int, int]]",
    mode: Mode = "zero",
    reference: Sequence[Any] | None = None,
    *,
    batch_size: int = 8,
) -> Iterator[Any]:
    """Knock ``heads`` out for the duration of a ``with`` block (see the module docstring).

    Args:
        model: a HookedTransformer or TransformerBridge.
        heads: query heads (``HeadSet``, ``"L4H4"`` labels or ``(layer, head)`` tuples).
        mode: ``"zero"``, ``"mean"`` or ``"uniform"``.
        reference: examples whose prompts give the ``"mean"`` activations (required for it,
            ignored otherwise).
        batch_size: prompts per forward when computing the means.

    Yields the model. Hooks are removed on exit, also when the body raises; every forward inside
    (including :func:`rhlens.greedy_generate`'s cached decoding) is knocked out.
    """
    if mode not in MODES:
        raise ValueError(f"Unknown knockout mode {mode!r}; use one of {', '.join(MODES)}")
    layers = heads_by_layer(model, heads, what="knockout heads")
    if mode == "mean":
        means = mean_head_outputs(model, reference or [], layers, batch_size=batch_size)
    fwd = []
    for layer, idx in sorted(layers.items()):
        if mode == "zero":
            fwd.append((hook_name("z", layer), _zero_hook(idx)))
        elif mode == "mean":
            fwd.append((hook_name("z", layer), _mean_hook(idx, means[layer])))
        else:
            fwd.append((hook_name("attn_scores", layer), _uniform_hook(idx)))
    with hooks(model, fwd):
        yield model


def random_heads(
    model: Any, k: int, exclude: "Iterable[Head | str | tuple[int, int]]" = (), seed: int = 0
) -> HeadSet:
    """``k`` random query heads of ``model``, none in ``exclude`` (the control for a knockout).

    >>> from rhlens.models import tiny_llama
    >>> model = tiny_llama(n_layers=2, n_heads=4)               # doctest: +SKIP
    >>> random_heads(model, 3, exclude=["L0H0"], seed=1)        # doctest: +SKIP
    """
    arch = architecture(model)
    return HeadSet.random(arch.n_layers, arch.n_heads, k, exclude=as_head_set(exclude), seed=seed)


def knockout_effect(
    model: Any,
    examples: Sequence[Any],
    heads: "Iterable[Head | str | tuple[int, int]]",
    *,
    mode: Mode = "zero",
    reference: Sequence[Any] | None = None,
    metric: Any = None,
    baseline: EvalResult | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> KnockoutEffect:
    """The metric on ``examples`` with and without knocking ``heads`` out.

    Args:
        metric: as in :func:`rhlens.evaluate`: ``None`` (task default on greedy output), a callable
            ``(prediction, example) -> float``, or ``"logprob"`` (teacher-forced log-prob of the
            gold answer).
        baseline: the intact model's result on the same examples and metric, to reuse across
            several head sets (computed when ``None``).
        mode, reference: as in :func:`knockout`.
        max_new_tokens, batch_size, chunk_size, progress: as in :func:`rhlens.evaluate`.

    Returns:
        :class:`KnockoutEffect` with ``baseline``, ``knocked`` and ``delta`` (knocked - baseline).
    """
    from rhlens.evaluation import evaluate

    hs = as_head_set(heads)
    kw = dict(metric=metric, max_new_tokens=max_new_tokens, batch_size=batch_size, chunk_size=chunk_size, progress=progress)
    if baseline is None:
        baseline = evaluate(model, examples, **kw)
    elif len(baseline) != len(examples):
        raise ValueError(f"baseline has {len(baseline)} scores but there are {len(examples)} examples")
    with knockout(model, hs, mode, reference, batch_size=batch_size):
        knocked = evaluate(model, examples, **kw)
    return KnockoutEffect(baseline=baseline, knocked=knocked, heads=hs, mode=mode)
