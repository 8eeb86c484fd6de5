"""The run engine under every analyzer: examples in, batched forwards and greedy decoding out.

Evaluation, retrieval scores, knockout, blocking and patching all run their models through this
module, so a baseline and its intervention always run the same code and the same kernels:

- Examples come in encoded by :func:`rhlens.encoding.encode_for_model` (checked: an ``Example``
  each, valid, fitting the model's context; prompt only, or prompt + answer).
- :func:`batches`: the one batch loop: length-sorted batches of left-padded token ids (a
  :class:`Batch`, which builds its :class:`Runner`), models in :func:`running`, a progress bar.
- :func:`running`: the models in eval and inference mode, attention on the fused (SDPA) path
  where the model supports it (a layer whose scores or pattern is hooked runs eagerly; ``hook_z``
  fires on the fused path).
- :class:`Runner`: feeds one padded batch column range by column range through one model, or
  several in lockstep (cross-model patching), each with its KV cache, and publishes
  :class:`Step` (which columns run, and which query rows are decoding steps) to hooks.
- :func:`decode`: greedy decoding as Wu et al.: prefill all but the last prompt token in chunks,
  then one forward per step starting with the last prompt token, a per-step callback
  (:data:`StepCallback`), and hooks active only during the decoding steps when asked.
- :func:`greedy_tokens`: :func:`decode` over batches of prompts; :func:`answer_logprobs`:
  teacher-forced ``log P(answer | prompt)`` summed over chunks (:class:`AnswerLogprobSum`).

Decoding steps. Wu et al. prefill ``prompt[:-1]`` and decode from the last prompt token; their
head masking applies only to those decoding forwards. :func:`current_step` tells a hook which
query rows of the running forward are decoding rows: the last prompt token and every generated
token (teacher-forced: the rows that predict answer tokens). Outside the engine (a bare
``model(tokens)``) it returns ``None``.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> tok = word_level_tokenizer(["a b c d e f"])
>>> model = tiny_llama(tokenizer=tok, seed=0)
>>> gen = greedy_tokens([model], [[1, 4, 5], [1, 6]], max_new_tokens=3, stop=set(), progress=False)
>>> [len(row) for row in gen.tokens]
[3, 3]
"""

import contextlib
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Iterator, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rhlens.adapter import Model, analysis_mode, forward, model_device, new_kv_cache, prefill, tokenizer_of
from rhlens.adapter.fused import fused_attention
from rhlens.encoding import EncodedExample, PaddedBatch, pad_id_of, pad_left
from rhlens.progress import progress_bar as _progress_bar

StepCallback = Callable[[int, Int[Tensor, "batch"], Bool[Tensor, "batch"]], None]
"""``on_step(step, next_tokens, active)``: after the forward of decoding step ``step`` (0 is the
last prompt position), ``next_tokens[b]`` is row ``b``'s greedy token and ``active[b]`` is False
for rows that had already stopped (their token is ignored)."""

BatchSetup = Callable[[Sequence[EncodedExample], PaddedBatch, int], ContextManager]
"""``setup(encoded, padded, n_columns)``: a context entered around one batch's run (e.g. the
hooks of a cross-model patch); ``n_columns`` is how many columns will run (prompt width plus
``max_new_tokens`` when decoding)."""


# ---------------------------------------------------------------------------------------------
# Batches


def length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped ``batch_size`` at a time after sorting by length (less padding).

    >>> length_batches([5, 2, 9, 2], 2)
    [[1, 3], [0, 2]]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def chunk_bounds(start: int, end: int, chunk_size: int | None) -> list[tuple[int, int]]:
    """``[s, e)`` column ranges covering ``start..end`` in pieces of ``chunk_size`` (``None``: one)."""
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 or None, got {chunk_size}")
    step = chunk_size or max(end - start, 1)
    return [(s, min(s + step, end)) for s in range(start, end, step)]


# ---------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class Step:
    """What the engine is running right now (read by hooks through :func:`current_step`).

    Attributes:
        start, end: the columns ``[start, end)`` of the padded batch this forward feeds.
        decode_from: ``[batch]`` each row's first decoding column (its last prompt token).
    """

    start: int
    end: int
    decode_from: Int[Tensor, "batch"]

    def decoding(self, q_len: int, device: Any = None) -> Bool[Tensor, "batch q_len"]:
        """True at the query rows (the last ``q_len`` columns up to :attr:`end`) that are decoding
        steps."""
        cols = torch.arange(self.end - q_len, self.end, device=device)
        return cols[None, :] >= self.decode_from.to(device)[:, None]


_STEP: ContextVar["Step | None"] = ContextVar("rhlens_engine_step", default=None)


def current_step() -> Step | None:
    """The :class:`Step` of the engine forward in progress, or ``None`` outside the engine."""
    return _STEP.get()


@contextlib.contextmanager
def running(models: Sequence[Model], *, fused: bool = True) -> Iterator[None]:
    """Every model in analysis mode (eval, inference; modes restored) and, when ``fused``, on the
    fused attention path where it supports it."""
    with contextlib.ExitStack() as stack:
        for m in models:
            stack.enter_context(analysis_mode(m))
            if fused:
                stack.enter_context(fused_attention(m, strict=False))
        yield


class Runner:
    """Feeds one padded batch, column range by column range, through ``models`` in order (all on
    the same tokens; the logits of the last are returned), each with its own KV cache.

    Args:
        models: one model, or a source and a target run in lockstep.
        n_rows: batch rows.
        decode_from: ``[n_rows]`` first decoding column of each row (see :class:`Step`).
        cache: keep a KV cache (needed when the batch is fed in more than one piece).
    """

    def __init__(self, models: Sequence[Model], n_rows: int, decode_from: Tensor, *, cache: bool = True) -> None:
        self.models = list(models)
        self.caches = [new_kv_cache(m, n_rows) if cache else None for m in self.models]
        self.decode_from = decode_from
        self.end = 0

    def __call__(self, tokens: Int[Tensor, "batch q"], mask: Int[Tensor, "batch q"]) -> Float[Tensor, "batch q d_vocab"]:
        """Run the next columns through every model; the last model's logits ``[batch, q, d_vocab]``."""
        return self._run(tokens, mask, logits=True)

    def _run(self, tokens: Int[Tensor, "batch q"], mask: Int[Tensor, "batch q"], *, logits: bool) -> Tensor | None:
        start, self.end = self.end, self.end + tokens.shape[1]
        token = _STEP.set(Step(start, self.end, self.decode_from))
        out = None
        try:
            for model, cache in zip(self.models, self.caches):
                dev = model_device(model)
                if logits:
                    out = forward(model, tokens.to(dev), attention_mask=mask.to(dev), past_kv_cache=cache)
                else:
                    prefill(model, tokens.to(dev), attention_mask=mask.to(dev), past_kv_cache=cache)
        finally:
            _STEP.reset(token)
        return out

    def feed(self, padded: PaddedBatch, end: int, chunk_size: int | None) -> None:
        """Run columns ``self.end .. end`` into the caches in chunks, without their logits
        (:func:`rhlens.adapter.prefill`: the last layer computes only its keys and values)."""
        for s, e in chunk_bounds(self.end, end, chunk_size):
            self._run(padded.tokens[:, s:e], padded.attention_mask[:, s:e], logits=False)


@dataclass(frozen=True)
class Batch:
    """One length-sorted batch from :func:`batches`.

    Attributes:
        rows: indices of the batch's sequences in the caller's list (write results there).
        padded: their left-padded ids, on the models' device.
        encoded: their encoded examples, when :func:`batches` was given them (else ``None``).
        models: the models the batch runs through (the last one's logits are returned).
    """

    rows: list[int]
    padded: PaddedBatch
    encoded: list[EncodedExample] | None
    models: list[Model]

    def runner(self, *, decode_from: Tensor | None = None, cache: bool = True, models: Sequence[Model] | None = None,
               ) -> Runner:
        """A fresh :class:`Runner` over this batch. ``decode_from`` defaults to each row's last
        prompt column (:func:`first_decoding_column`) when the batch has encoded examples, else to
        the last column; ``models`` to the batch's."""
        n, width = self.padded.tokens.shape
        if decode_from is None:
            decode_from = (first_decoding_column(self.padded, self.encoded) if self.encoded is not None
                           else torch.full((n,), width - 1, device=self.padded.tokens.device))
        return Runner(self.models if models is None else models, n, decode_from, cache=cache)


def batches(
    models: Sequence[Model], sequences: Sequence[Sequence[int]], *, batch_size: int, desc: str, progress: bool = True,
    encoded: Sequence[EncodedExample] | None = None, analysis: Sequence[Model] | None = None,
) -> Iterator[Batch]:
    """The one batch loop of rhlens: length-sorted batches of ``sequences`` (token ids), left-padded
    on the device of ``models[-1]``, with a bar (:func:`rhlens.progress.progress_bar`) when
    ``progress``; the models in ``analysis`` (default: all) in :func:`running` while the loop runs,
    inference mode included (``analysis=[]``: the caller's modes, e.g. attribution's autograd). A
    sharded or GPU engine changes this function and :class:`Runner`, not the analyzers.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> model = tiny_llama(tokenizer=word_level_tokenizer(["a b c"]), seed=0)
    >>> [(b.rows, tuple(b.padded.tokens.shape)) for b in batches([model], [[1, 4, 5], [1]], batch_size=1, desc="", progress=False)]
    [([1], (1, 1)), ([0], (1, 3))]
    """
    models = list(models)
    device = model_device(models[-1])
    pad = pad_id_of(tokenizer_of(models[-1]))
    with running(models if analysis is None else analysis):
        for rows in _progress_bar(length_batches([len(s) for s in sequences], batch_size), enabled=progress, desc=desc):
            padded = pad_left([sequences[i] for i in rows], pad, device=device)
            yield Batch(rows, padded, None if encoded is None else [encoded[i] for i in rows], models)


def advance_rows(
    next_tokens: Int[Tensor, "batch"], active: Bool[Tensor, "batch"], stop: set[int], out: list[list[int]]
) -> list[int]:
    """Append each active row's token to ``out``; a stop token deactivates the row instead.

    Returns the rows that stopped at this step. ``active`` is updated in place.
    """
    stopped = []
    for b in active.nonzero().flatten().tolist():
        t = int(next_tokens[b])
        if t in stop:
            active[b] = False
            stopped.append(b)
        else:
            out[b].append(t)
    return stopped


@dataclass(frozen=True)
class Generation:
    """Greedy continuations.

    Attributes:
        tokens: per prompt, the generated ids, stopping token excluded.
        stopped: per prompt, whether a stop token ended it (else ``max_new_tokens`` did).
    """

    tokens: list[list[int]]
    stopped: list[bool]

    def texts(self, tokenizer: Any) -> list[str]:
        """Decoded continuations (special tokens skipped, surrounding space stripped)."""
        return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in self.tokens]


def decode(
    run: Runner,
    padded: PaddedBatch,
    *,
    max_new_tokens: int,
    stop: set[int],
    chunk_size: int | None,
    on_step: StepCallback | None = None,
    step_hooks: Callable[[], ContextManager] | None = None,
) -> Generation:
    """Greedy decoding of one left-padded batch of prompts (the decoding loop of rhlens).

    The prompt but its last token is prefilled in chunks of ``chunk_size``; then each step feeds
    one token per row (step 0: the last prompt token) and takes the argmax. ``on_step`` is called
    after each step's forward; ``step_hooks()`` is entered around the decoding steps only (hooks
    that score the steps, as Wu et al.'s loop). A row ends at a stop token (excluded) or after
    ``max_new_tokens`` tokens.
    """
    n, width = padded.tokens.shape
    device = padded.tokens.device
    run.feed(padded, width - 1, chunk_size)
    out: list[list[int]] = [[] for _ in range(n)]
    stopped = [False] * n
    active = torch.ones(n, dtype=torch.bool, device=device)
    ones = torch.ones(n, 1, dtype=torch.long, device=device)
    inputs, mask = padded.tokens[:, -1:], padded.attention_mask[:, -1:]
    with step_hooks() if step_hooks is not None else contextlib.nullcontext():
        for step in range(max_new_tokens):
            next_tokens = run(inputs, mask)[:, -1].argmax(dim=-1).to(device)
            if on_step is not None:
                on_step(step, next_tokens, active.clone())
            for b in advance_rows(next_tokens, active, stop, out):
                stopped[b] = True
            if not bool(active.any()):
                break
            inputs, mask = next_tokens[:, None], ones
    return Generation(tokens=out, stopped=stopped)


def greedy_tokens(
    models: Sequence[Model],
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int,
    stop: set[int],
    chunk_size: int | None = 512,
    batch_size: int | None = None,
    progress: bool = True,
    desc: str = "generate",
    encoded: Sequence[EncodedExample] | None = None,
    setup: BatchSetup | None = None,
    on_step: StepCallback | None = None,
) -> Generation:
    """Greedy continuations of token-id ``prompts`` by ``models[-1]`` (earlier models run in
    lockstep), in length-sorted batches of ``batch_size`` (``None``: one batch), in the caller's
    order. ``setup`` (given ``encoded``, one per prompt) is entered around each batch."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    tokens: list[list[int]] = [[] for _ in prompts]
    stopped = [False] * len(prompts)
    for batch in batches(models, prompts, batch_size=batch_size or len(prompts), progress=progress, desc=desc,
                         encoded=encoded):
        width = batch.padded.tokens.shape[1]
        run = batch.runner(decode_from=torch.full((len(batch.rows),), width - 1, device=batch.padded.tokens.device))
        with setup(batch.encoded, batch.padded, width + max_new_tokens) if setup else contextlib.nullcontext():
            gen = decode(run, batch.padded, max_new_tokens=max_new_tokens, stop=stop, chunk_size=chunk_size, on_step=on_step)
        for b, i in enumerate(batch.rows):
            tokens[i], stopped[i] = gen.tokens[b], gen.stopped[b]
    return Generation(tokens=tokens, stopped=stopped)


# ---------------------------------------------------------------------------------------------
# Teacher forcing


def answer_targets(batch: PaddedBatch, encoded: Sequence[EncodedExample]) -> Bool[Tensor, "batch pos"]:
    """Bool ``[batch, pos]``: True at the columns whose logits predict an answer token.

    Answer token ``i`` of row ``b`` sits at column ``offsets[b] + i``; its logits are those of the
    column before.
    """
    out = torch.zeros_like(batch.tokens, dtype=torch.bool)
    for b, enc in enumerate(encoded):
        off = int(batch.offsets[b])
        out[b, off + enc.completion_span[0] - 1 : off + enc.completion_span[1] - 1] = True
    return out


def first_decoding_column(batch: PaddedBatch, encoded: Sequence[EncodedExample]) -> Int[Tensor, "batch"]:
    """``[batch]``: each row's last prompt column (the first whose output predicts the answer)."""
    lens = torch.tensor([e.prompt_len for e in encoded], device=batch.offsets.device)
    return batch.offsets + lens - 1


class AnswerLogprobSum:
    """Sums teacher-forced answer log-probs over the chunks of one padded batch.

    ``add(start, logits)`` takes the logits ``[batch, end - start, d_vocab]`` of columns
    ``start..end``; :attr:`total` ``[batch]`` is the summed log-prob of each row's answer tokens.
    """

    def __init__(self, batch: PaddedBatch, encoded: Sequence[EncodedExample]):
        self.predicts = answer_targets(batch, encoded)
        self.next_tokens = torch.roll(batch.tokens, -1, dims=1)
        self.total = torch.zeros(batch.tokens.shape[0], dtype=torch.float64, device=batch.tokens.device)

    def add(self, start: int, logits: Float[Tensor, "batch chunk d_vocab"]) -> None:
        end = start + logits.shape[1]
        sel = self.predicts[:, start:end].to(logits.device)
        if not bool(sel.any()):
            return
        rows = logits[sel].float().log_softmax(dim=-1)  # [n_sel, d_vocab]
        gold = self.next_tokens[:, start:end].to(logits.device)[sel]
        lp = rows.gather(-1, gold[:, None])[:, 0].double()
        self.total.index_add_(0, sel.nonzero()[:, 0].to(self.total.device), lp.to(self.total.device))


def answer_logprobs(
    models: Sequence[Model],
    encoded: Sequence[EncodedExample],
    *,
    batch_size: int = 8,
    chunk_size: int | None = None,
    progress: bool = True,
    desc: str = "logprob",
    setup: BatchSetup | None = None,
) -> Float[Tensor, "example"]:
    """Teacher-forced ``log P(answer | prompt)`` of ``models[-1]`` per encoded example
    ``[n_examples]`` (float64, CPU); earlier models run in lockstep, ``setup`` around each batch."""
    out = torch.zeros(len(encoded), dtype=torch.float64)
    for batch in batches(models, [e.tokens for e in encoded], batch_size=batch_size, progress=progress, desc=desc,
                         encoded=encoded):
        padded, encs = batch.padded, batch.encoded
        bounds = chunk_bounds(0, padded.tokens.shape[1], chunk_size)
        run = batch.runner(cache=len(bounds) > 1)
        acc = AnswerLogprobSum(padded, encs)
        with setup(encs, padded, padded.tokens.shape[1]) if setup else contextlib.nullcontext():
            for s, e in bounds:
                acc.add(s, run(padded.tokens[:, s:e], padded.attention_mask[:, s:e]))
        out[batch.rows] = acc.total.cpu()
    return out
