"""Evaluate a model on examples: greedy generation scored by the task's metric, or the
teacher-forced log-probability of the gold answer.

Two kinds of metric:

- a text metric ``(prediction: str, example) -> float`` (``None``: each example's task default,
  :func:`rhlens.tasks.default_metric`): the model answers by batched greedy decoding
  (:func:`rhlens.greedy_generate`, chunked prefill through the KV cache), the answer is scored.
- ``"logprob"``: teacher-forced ``log P(answer | prompt)``, the sum over the answer's tokens
  (``" " + answer``, no EOS) of the log-probability of each gold token. One forward per batch, no
  decoding; exact and smooth, so small interventions show up. Predictions are ``None``.

Hooks attached around :func:`evaluate` (e.g. :func:`rhlens.knockout`) stay active for every forward.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks import Example
>>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
>>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]))
>>> result = evaluate(model, [ex], max_new_tokens=2, progress=False)
>>> len(result.per_example), len(result.predictions)
(1, 1)
>>> lp = evaluate(model, [ex], metric="logprob", progress=False)
>>> bool(lp.score < 0), lp.predictions is None
(True, True)

Memory: the teacher-forced path materialises logits ``[batch, pos, d_vocab]`` per chunk; pass
``chunk_size`` to run long prompts through the KV cache in pieces (only the answer rows are
kept).
"""

from typing import Any, Callable, Sequence, Union

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rhlens.adapter import analysis_mode, architecture, forward, model_device, new_kv_cache, tokenizer_of
from rhlens.encoding import EncodedExample, PaddedBatch, check_fits, encode_example, pad_id_of, pad_left
from rhlens.interventions.results import EvalResult

TextMetric = Callable[[str, Any], float]
Metric = Union[TextMetric, str, None]

LOGPROB = "logprob"


def _progress(iterable: Any, *, enabled: bool, desc: str, total: int | None = None) -> Any:
    if not enabled:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, leave=False)


def batches(n: int, batch_size: int) -> list[range]:
    """``range`` objects covering ``0..n`` in pieces of ``batch_size``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return [range(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]


def text_metrics(examples: Sequence[Any], metric: TextMetric | None) -> list[TextMetric]:
    """One text metric per example: ``metric``, or each example's task default."""
    if metric is not None:
        if not callable(metric):
            raise TypeError(f"metric must be callable (prediction, example) -> float or {LOGPROB!r}, got {metric!r}")
        return [metric] * len(examples)
    from rhlens.tasks.metrics import default_metric

    cache: dict[str, TextMetric] = {}
    out = []
    for i, ex in enumerate(examples):
        task = getattr(ex, "task", None)
        if task not in cache:
            try:
                cache[task] = default_metric(task)
            except ValueError as err:
                raise ValueError(f"Example {i}: {err}. Pass metric=(prediction, example) -> float") from None
        out.append(cache[task])
    return out


def is_logprob(metric: Metric) -> bool:
    if isinstance(metric, str):
        if metric != LOGPROB:
            raise ValueError(f"Unknown metric {metric!r}: pass {LOGPROB!r} or a callable (prediction, example) -> float")
        return True
    return False


def encode_prompts(model: Any, examples: Sequence[Any]) -> list[EncodedExample]:
    """Prompt-only encodings (BOS when the model uses one), indexed by position in ``examples``."""
    tok = tokenizer_of(model)
    from rhlens.adapter import prepends_bos

    bos = prepends_bos(model)
    return [encode_example(tok, ex, with_answer=False, prepend_bos=bos, index=i) for i, ex in enumerate(examples)]


def encode_answers(model: Any, examples: Sequence[Any]) -> list[EncodedExample]:
    """Prompt + ``" " + answer`` encodings (no EOS), checked against the model's context."""
    tok = tokenizer_of(model)
    from rhlens.adapter import prepends_bos

    bos = prepends_bos(model)
    enc = [
        encode_example(tok, ex, with_answer=True, append_eos=False, prepend_bos=bos, index=i)
        for i, ex in enumerate(examples)
    ]
    check_fits(enc, architecture(model).n_ctx)
    return enc


def answer_targets(batch: PaddedBatch, encoded: Sequence[EncodedExample]) -> Bool[Tensor, "batch pos"]:
    """Bool ``[batch, pos]``: True at the columns whose logits predict an answer token.

    Answer token ``i`` of row ``b`` sits at column ``offsets[b] + i``; its logits are those of the
    column before.
    """
    out = torch.zeros_like(batch.tokens, dtype=torch.bool)
    for b, enc in enumerate(encoded):
        off = int(batch.offsets[b])
        out[b, off + enc.answer_span[0] - 1 : off + enc.answer_span[1] - 1] = True
    return out


def chunk_bounds(width: int, chunk_size: int | None) -> list[tuple[int, int]]:
    """``[start, end)`` column ranges of ``chunk_size`` (one range when ``None``)."""
    step = chunk_size or width
    if step < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + step, width)) for s in range(0, width, step)]


class TeacherForced:
    """Accumulates teacher-forced answer log-probs over chunks of one padded batch.

    ``add(start, logits)`` takes the logits ``[batch, end - start, d_vocab]`` of columns
    ``start..end``; :attr:`total` ``[batch]`` is the summed log-prob of each row's answer tokens.
    """

    def __init__(self, batch: PaddedBatch, encoded: Sequence[EncodedExample]):
        self.predicts = answer_targets(batch, encoded)
        nxt = torch.roll(batch.tokens, -1, dims=1)
        self.next_tokens = nxt
        self.total = torch.zeros(batch.tokens.shape[0], dtype=torch.float64, device=batch.tokens.device)

    def add(self, start: int, logits: Float[Tensor, "batch chunk d_vocab"]) -> None:
        end = start + logits.shape[1]
        sel = self.predicts[:, start:end]
        if not bool(sel.any()):
            return
        rows = logits[sel].float().log_softmax(dim=-1)  # [n_sel, d_vocab]
        gold = self.next_tokens[:, start:end][sel]
        lp = rows.gather(-1, gold[:, None])[:, 0].double()
        self.total.index_add_(0, sel.nonzero()[:, 0], lp)


def answer_logprobs(
    model: Any,
    examples: Sequence[Any],
    *,
    batch_size: int = 8,
    chunk_size: int | None = None,
    progress: bool = True,
) -> Float[Tensor, "example"]:
    """Teacher-forced ``log P(" " + answer | prompt)`` per example ``[n_examples]`` (float64, CPU)."""
    encoded = encode_answers(model, examples)
    pad = pad_id_of(tokenizer_of(model))
    device = model_device(model)
    out = torch.zeros(len(examples), dtype=torch.float64)
    with analysis_mode(model):
        for rows in _progress(batches(len(encoded), batch_size), enabled=progress, desc="logprob"):
            encs = [encoded[i] for i in rows]
            batch = pad_left([e.tokens for e in encs], pad, device=device)
            acc = TeacherForced(batch, encs)
            bounds = chunk_bounds(batch.tokens.shape[1], chunk_size)
            cache = new_kv_cache(model, len(rows)) if len(bounds) > 1 else None
            for start, end in bounds:
                mask = batch.attention_mask[:, start:end]
                acc.add(start, forward(model, batch.tokens[:, start:end], attention_mask=mask, past_kv_cache=cache))
            out[rows.start : rows.stop] = acc.total.cpu()
    return out


def score_texts(predictions: Sequence[str], examples: Sequence[Any], metric: TextMetric | None) -> list[float]:
    """Score each prediction with ``metric`` (or the example's task default)."""
    fns = text_metrics(examples, metric)
    return [float(fn(p, ex)) for fn, p, ex in zip(fns, predictions, examples)]


def evaluate(
    model: Any,
    examples: Sequence[Any],
    *,
    metric: Metric = None,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> EvalResult:
    """Score ``model`` on ``examples``.

    Args:
        model: a HookedTransformer or TransformerBridge with a tokenizer (eval/inference mode
            inside, previous mode restored).
        examples: :class:`rhlens.tasks.Example` records.
        metric: ``None`` (each example's task default metric on greedy output), a callable
            ``(prediction, example) -> float``, or ``"logprob"`` (teacher-forced log-prob of the
            gold answer; see the module docstring).
        max_new_tokens: greedy decoding budget per example (text metrics).
        batch_size: examples per forward.
        chunk_size: prompt chunk length through the KV cache (``None``: whole prompt at once).
        progress: a tqdm bar over batches.

    Returns:
        :class:`EvalResult` with ``score`` (mean), ``per_example`` ``[n_examples]`` and
        ``predictions`` (decoded, stripped; ``None`` for ``"logprob"``).
    """
    if not examples:
        raise ValueError("evaluate needs at least one example")
    if is_logprob(metric):
        per = answer_logprobs(model, examples, batch_size=batch_size, chunk_size=chunk_size, progress=progress)
        return EvalResult(per_example=per.float(), predictions=None, metric=LOGPROB)
    from rhlens.generation import greedy_generate

    fns = text_metrics(examples, metric)  # fail on an unknown task before generating
    encoded = encode_prompts(model, examples)
    tok = tokenizer_of(model)
    predictions: list[str] = []
    for rows in _progress(batches(len(encoded), batch_size), enabled=progress, desc="evaluate"):
        gen = greedy_generate(
            model, [encoded[i].tokens for i in rows], max_new_tokens=max_new_tokens, chunk_size=chunk_size
        )
        predictions.extend(gen.texts(tok))
    scores = [float(fn(p, ex)) for fn, p, ex in zip(fns, predictions, examples)]
    name = getattr(metric, "__name__", "custom") if metric is not None else "task default"
    return EvalResult(per_example=torch.tensor(scores, dtype=torch.float32), predictions=predictions, metric=name)
