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
  (``encoded`` holds prompt and gold answer; ``n_positions`` is the number of positions that run:
  ``len(encoded.tokens)`` teacher-forced, ``prompt_len + max_new_tokens`` when generating).

Cost: one source forward per target forward (twice an evaluation); memory: the captured
``hook_z`` of one chunk at the patched heads.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks import Example
>>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
>>> tok = word_level_tokenizer([ex.prompt + ex.completion])
>>> source, target = tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2)
>>> res = patch_heads(source, target, [ex], ["L0H0", "L1H2"], metric="logprob", progress=False)
>>> res.heads, res.delta == res.patched.score - res.original.score
(HeadSet([L0H0, L1H2]), True)
"""

import contextlib
from typing import Any, Callable, Iterable, Sequence, Union

import torch
from jaxtyping import Bool
from torch import Tensor

from rhlens.adapter import analysis_mode, architecture, forward, hook_name, hooks, model_device, new_kv_cache, tokenizer_of
from rhlens.encoding import EncodedExample, PaddedBatch, pad_id_of, pad_left
from rhlens.heads import Head, as_head_set
from rhlens.interventions._common import heads_by_layer
from rhlens.interventions.compat import check_compatible
from rhlens.interventions.results import EvalResult, PatchResult

PositionRule = Union[str, Callable[[EncodedExample, int], Tensor]]
POSITION_RULES = ("all", "prompt", "answer", "needle")


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
        raise ValueError(f"Unknown positions {rule!r}: use one of {', '.join(POSITION_RULES)} or a callable")
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


class Cursor:
    """The end column (exclusive) of the chunk a model is running on; hooks read it."""

    def __init__(self) -> None:
        self.end = 0


class HeadPatcher:
    """Capture hooks for the source, patch hooks for the target, sharing one store.

    ``cols`` ``[batch, width]`` says where to patch; each hook sees ``pos`` rows ending at its
    model's ``cursor.end`` (a TransformerBridge's recompute cache re-runs the whole prefix, so its
    hooks see every column up to the end; the last ``pos`` of the source's are used).
    """

    def __init__(self, layers: dict[int, list[int]], cols: Bool[Tensor, "batch width"]):
        self.layers = layers
        self.cols = cols
        self.source_cursor, self.target_cursor = Cursor(), Cursor()
        self.store: dict[int, tuple[int, Tensor]] = {}

    def _capture(self, layer: int, idx: list[int]):
        def hook(z: Tensor, hook: Any) -> None:
            self.store[layer] = (self.source_cursor.end, z[:, :, idx].detach().clone())

        return hook

    def _patch(self, layer: int, idx: list[int]):
        def hook(z: Tensor, hook: Any) -> Tensor:
            end, pos = self.target_cursor.end, z.shape[1]
            if layer not in self.store:
                raise RuntimeError(f"patch_heads: no source activation captured for layer {layer}")
            src_end, src = self.store.pop(layer)
            if src_end != end or src.shape[1] < pos or src.shape[0] != z.shape[0]:
                raise RuntimeError(
                    f"patch_heads: source and target fell out of step at layer {layer} "
                    f"(source ended at column {src_end} with shape {tuple(src.shape)}, target at {end} with {tuple(z.shape)})"
                )
            src = src[:, src.shape[1] - pos :].to(device=z.device, dtype=z.dtype)
            where = self.cols[:, end - pos : end].to(z.device)[:, :, None, None]
            z = z.clone()
            z[:, :, idx] = torch.where(where, src, z[:, :, idx])
            return z

        return hook

    def capture_hooks(self) -> list:
        return [(hook_name("z", l), self._capture(l, idx)) for l, idx in sorted(self.layers.items())]

    def patch_hooks(self) -> list:
        return [(hook_name("z", l), self._patch(l, idx)) for l, idx in sorted(self.layers.items())]


@contextlib.contextmanager
def lockstep(source: Any, target: Any, patcher: HeadPatcher):
    """Both models in analysis mode, source capturing and target patching (hooks removed on exit)."""
    with analysis_mode(source), analysis_mode(target):
        with hooks(source, patcher.capture_hooks()), hooks(target, patcher.patch_hooks()):
            yield


def _forward_both(
    source: Any, target: Any, patcher: HeadPatcher, tokens: Tensor, mask: Tensor, end: int, caches: tuple
) -> Tensor:
    s_dev = model_device(source)
    patcher.source_cursor.end = end
    forward(source, tokens.to(s_dev), attention_mask=mask.to(s_dev), past_kv_cache=caches[0])
    patcher.target_cursor.end = end
    return forward(target, tokens, attention_mask=mask, past_kv_cache=caches[1])


def patched_logprobs(
    source: Any,
    target: Any,
    encoded: Sequence[EncodedExample],
    layers: dict[int, list[int]],
    rule: PositionRule,
    *,
    batch_size: int,
    chunk_size: int | None,
    progress: bool,
) -> Tensor:
    """Teacher-forced answer log-probs ``[n_examples]`` of the patched target."""
    from rhlens.evaluation import TeacherForced, _progress, batches, chunk_bounds

    pad = pad_id_of(tokenizer_of(target))
    device = model_device(target)
    out = torch.zeros(len(encoded), dtype=torch.float64)
    for rows in _progress(batches(len(encoded), batch_size), enabled=progress, desc="patch (logprob)"):
        encs = [encoded[i] for i in rows]
        batch = pad_left([e.tokens for e in encs], pad, device=device)
        width = batch.tokens.shape[1]
        patcher = HeadPatcher(layers, column_mask(rule, encs, batch.offsets, width))
        acc = TeacherForced(batch, encs)
        bounds = chunk_bounds(width, chunk_size)
        caches = (None, None)
        if len(bounds) > 1:
            caches = (new_kv_cache(source, len(rows)), new_kv_cache(target, len(rows)))
        with lockstep(source, target, patcher):
            for start, end in bounds:
                logits = _forward_both(
                    source, target, patcher, batch.tokens[:, start:end], batch.attention_mask[:, start:end], end, caches
                )
                acc.add(start, logits)
        out[rows.start : rows.stop] = acc.total.cpu()
    return out


def patched_generate(
    source: Any,
    target: Any,
    encoded: Sequence[EncodedExample],
    layers: dict[int, list[int]],
    rule: PositionRule,
    *,
    max_new_tokens: int,
    chunk_size: int | None,
    stop_ids: set[int] | None = None,
) -> list[list[int]]:
    """Greedy continuations of the patched target (stop token excluded), source in lockstep.

    ``encoded`` holds prompt and gold answer (for the position rule); only the prompt is fed.

    Decoding follows :func:`rhlens.greedy_generate`: left-padded prompts, chunked prefill through
    the KV cache, one token per step, a row stops at a stop id (default EOS and newline).
    """
    from rhlens.evaluation import chunk_bounds
    from rhlens.generation import advance_rows, default_stop_ids

    tok = tokenizer_of(target)
    stop = default_stop_ids(tok) if stop_ids is None else set(stop_ids)
    n_ctx = architecture(target).n_ctx
    for enc in encoded:
        if enc.prompt_len + max_new_tokens > n_ctx:
            raise ValueError(
                f"Example {enc.index} has {enc.prompt_len} prompt tokens; with max_new_tokens={max_new_tokens} it "
                f"exceeds the model's context of {n_ctx}"
            )
    device = model_device(target)
    n = len(encoded)
    batch = pad_left([e.prompt_tokens for e in encoded], pad_id_of(tok), device=device)
    width = batch.tokens.shape[1]
    patcher = HeadPatcher(layers, column_mask(rule, encoded, batch.offsets, width + max_new_tokens))
    caches = (new_kv_cache(source, n), new_kv_cache(target, n))
    out: list[list[int]] = [[] for _ in range(n)]
    with lockstep(source, target, patcher):
        for start, end in chunk_bounds(width, chunk_size):
            logits = _forward_both(
                source, target, patcher, batch.tokens[:, start:end], batch.attention_mask[:, start:end], end, caches
            )[:, -1]
        active = torch.ones(n, dtype=torch.bool, device=device)
        ones = torch.ones(n, 1, dtype=torch.long, device=device)
        for step in range(max_new_tokens):
            next_tokens = logits.argmax(dim=-1)
            advance_rows(next_tokens, active, stop, out)
            if not bool(active.any()) or step == max_new_tokens - 1:
                break
            logits = _forward_both(source, target, patcher, next_tokens[:, None], ones, width + step + 1, caches)[:, -1]
    return out


def patch_heads(
    source: Any,
    target: Any,
    examples: Sequence[Any],
    heads: "Iterable[Head | str | tuple[int, int]]",
    *,
    positions: PositionRule = "all",
    metric: Any = None,
    original: EvalResult | None = None,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
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
        metric: ``"logprob"`` (teacher-forced), a callable ``(prediction, example) -> float``, or
            ``None`` (each example's task default on greedy output).
        original: the unpatched target's result with the same metric (computed when ``None``).
        max_new_tokens, batch_size, chunk_size, progress: as in :func:`rhlens.evaluate`.

    Returns:
        :class:`PatchResult` with ``original``, ``patched``, ``delta`` and per-example values.

    Raises:
        IncompatibleModelsError: listing every difference between the two models.
    """
    from rhlens.evaluation import _progress, batches, encode_answers, evaluate, is_logprob, score_texts

    check_compatible(source, target)
    if isinstance(positions, str) and positions not in POSITION_RULES:
        raise ValueError(f"Unknown positions {positions!r}: use one of {', '.join(POSITION_RULES)} or a callable")
    hs = as_head_set(heads)
    layers = heads_by_layer(target, hs, what="patched heads")
    if not examples:
        raise ValueError("patch_heads needs at least one example")
    kw = dict(metric=metric, max_new_tokens=max_new_tokens, batch_size=batch_size, chunk_size=chunk_size, progress=progress)
    if original is None:
        original = evaluate(target, examples, **kw)
    elif len(original) != len(examples):
        raise ValueError(f"original has {len(original)} scores but there are {len(examples)} examples")
    encoded = encode_answers(target, examples)
    if is_logprob(metric):
        per = patched_logprobs(
            source, target, encoded, layers, positions, batch_size=batch_size, chunk_size=chunk_size, progress=progress
        )
        patched = EvalResult(per_example=per.float(), predictions=None, metric="logprob")
    else:
        tok = tokenizer_of(target)
        predictions: list[str] = []
        for rows in _progress(batches(len(encoded), batch_size), enabled=progress, desc="patch (generate)"):
            gen = patched_generate(
                source, target, [encoded[i] for i in rows], layers, positions,
                max_new_tokens=max_new_tokens, chunk_size=chunk_size,
            )
            predictions.extend(tok.decode(t, skip_special_tokens=True).strip() for t in gen)
        scores = score_texts(predictions, examples, metric)
        patched = EvalResult(per_example=torch.tensor(scores), predictions=predictions, metric=original.metric)
    return PatchResult(original=original, patched=patched, heads=hs, positions=rule_name(positions))
