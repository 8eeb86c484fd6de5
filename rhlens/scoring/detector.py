"""The detector seam: one small interface for every rule that scores attention heads, and the
one driver (:func:`score_heads`) that runs any of them on the run engine.

A detector says three things; the driver does the rest (encoding checks, length-sorted batches,
chunked prefill, greedy decoding or teacher forcing, observing the attention of the rows it asks
for, gathering results in the caller's order):

- **which rows to observe**: :attr:`Detector.decodes` picks the run (greedy decoding, observing
  the newest query row at each step; or one teacher-forced pass over ``item.enc.tokens``,
  observing the rows from :meth:`Detector.observed_from` on, by default the rows that predict
  the completion);
- **what to reduce per head**: :meth:`Detector.reduce` turns one layer's observed attention rows
  ``[batch, head, q, key]`` into something small right away (no pattern is kept), and
  :meth:`Detector.collect` turns one forward's reductions of every layer, with the token that
  follows each observed row, into per-head values ``[batch, layer, head]`` that the driver sums;
- **how to finish**: :meth:`Detector.finish` turns the summed values ``[n_examples, n_layers,
  n_heads]`` and the run's greedy responses into :class:`rhlens.scoring.HeadScores`.

Adding a detector is one new module with a :class:`Detector` subclass; Wu et al.'s decode and
forced scores (:class:`rhlens.scoring.wu.WuDecode`, :class:`rhlens.scoring.wu.WuForced`, one
module) are the first two.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.scoring.wu import WuForced
>>> from rhlens.tasks.example import Example
>>> prompt = "the key is red . Question : what is the key ? Answer :"
>>> ex = Example(prompt=prompt, answer="red", needles=((11, 14),), task="kv", variant="symbolic")
>>> model = tiny_llama(tokenizer=word_level_tokenizer([prompt]), seed=0)
>>> score_heads(model, [ex], WuForced(rouge_gate=None), progress=False).scores.shape
torch.Size([2, 4])
"""

from abc import ABC, abstractmethod
from functools import partial
from typing import Any, ClassVar, Sequence

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, architecture, hook_name, hooks, tokenizer_of
from rhlens.encoding import PaddedBatch
from rhlens.scoring.results import HeadScores
from rhlens.stopping import default_stop_ids


class Detector(ABC):
    """A rule that scores every attention head (see the module docstring for the contract).

    Subclasses set :attr:`name` and :attr:`decodes` and implement :meth:`prepare`,
    :meth:`start_batch`, :meth:`reduce`, :meth:`collect` and :meth:`finish`.
    """

    name: ClassVar[str]
    decodes: ClassVar[bool] = False
    """True: greedy decoding from each prompt, one forward per step, the newest row observed at
    each step (for up to :attr:`max_new_tokens` steps). False: one teacher-forced pass over
    ``item.enc.tokens``, the rows from :meth:`observed_from` on observed."""
    max_new_tokens: int = 50

    @property
    def label(self) -> str:
        """The progress bar's text."""
        return f"head scores ({self.name})"

    @abstractmethod
    def prepare(self, model: Model, examples: Sequence[Any]) -> Sequence[Any]:
        """Check and encode ``examples``: one item per example, each with ``.enc`` (an
        :class:`rhlens.encoding.EncodedExample`; a decoding detector encodes prompts only)."""

    def stop_ids(self, tokenizer: Any) -> set[int]:
        """Token ids that end a decoded or teacher-forced response: by default
        :func:`rhlens.stopping.default_stop_ids` (EOS and every newline token)."""
        return default_stop_ids(tokenizer)

    @abstractmethod
    def start_batch(self, model: Model, items: Sequence[Any], padded: PaddedBatch) -> Any:
        """Per-batch state (tables on ``padded.tokens.device``) handed to reduce and collect."""

    def observed_from(self, state: Any, padded: PaddedBatch, items: Sequence[Any]) -> Int[Tensor, "batch"]:
        """Teacher-forced runs: each row's first observed column (left-padded coordinates); the
        last column is never observed (nothing follows it). Default: the last prompt column,
        so the observed rows are those that predict the completion."""
        return engine.first_decoding_column(padded, [it.enc for it in items])

    @abstractmethod
    def reduce(self, state: Any, layer: int, rows: Float[Tensor, "batch head q key"], start: int) -> Any:
        """One layer's attention at the observed query rows, the first of them at padded column
        ``start`` (keys cover columns ``0 .. start + q``); returns what :meth:`collect` needs."""

    @abstractmethod
    def collect(
        self, state: Any, reduced: list[Any], start: int, following: Int[Tensor, "batch q"],
        valid: Bool[Tensor, "batch q"],
    ) -> Tensor:
        """Per-head values ``[batch, layer, head]`` of one forward from every layer's
        :meth:`reduce` output: ``following[b, j]`` is the token after observed row ``j`` (the
        greedy token when decoding, the gold one when teacher-forced), ``valid`` marks the rows
        that count (decoding rows not yet stopped; completion rows of each example)."""

    @abstractmethod
    def finish(
        self, model: Model, items: Sequence[Any], values: Tensor, responses: list[str]
    ) -> HeadScores:
        """The result from the summed values ``[n_examples, n_layers, n_heads]`` (caller's order)
        and each example's greedy response (teacher-forced: the argmax at the observed rows, cut
        at the first stop token)."""


def score_heads(
    model: Model,
    examples: Sequence[Any],
    detector: Detector,
    *,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> HeadScores:
    """Run ``detector`` over ``examples`` on ``model`` in length-sorted batches of ``batch_size``,
    prompts through the key/value cache in chunks of ``chunk_size`` tokens (``None``: at once).

    Columns that are never observed (all but the last prompt token when decoding; those before
    the first observed row when teacher-forced) are prefilled without observation.
    """
    engine.chunk_bounds(0, 1, chunk_size)  # checks chunk_size
    tok = tokenizer_of(model)
    stop = detector.stop_ids(tok)
    items = detector.prepare(model, examples)
    arch = architecture(model)
    values: Tensor | None = None
    responses = [""] * len(items)
    run_batch = _decode_batch if detector.decodes else _forced_batch
    for batch in engine.batches([model], [it.enc.tokens for it in items], batch_size=batch_size, progress=progress,
                                desc=detector.label, encoded=[it.enc for it in items]):
        got, texts = run_batch(model, detector, [items[i] for i in batch.rows], batch, chunk_size=chunk_size, stop=stop)
        if values is None:
            values = torch.zeros(len(items), arch.n_layers, arch.n_heads, dtype=got.dtype)
        values[batch.rows] = got.cpu()
        for i, text in zip(batch.rows, texts):
            responses[i] = text
    if values is None:
        values = torch.zeros(0, arch.n_layers, arch.n_heads)
    return detector.finish(model, items, values, responses)


def _observing(
    model: Model, detector: Detector, state: Any, latest: list[Any], first: int = 0, last: int | None = None
) -> Any:
    """Hooks that hand each layer's observed rows (query columns ``first .. last``) to ``reduce``."""

    def record(pattern: Tensor, hook: Any, *, layer: int) -> None:
        step = engine.current_step()
        assert step is not None
        q0 = step.end - pattern.shape[2]  # rows cover columns [q0, end)
        start, stop = max(first, q0), step.end if last is None else min(step.end, last)
        if start < stop:
            latest[layer] = detector.reduce(state, layer, pattern[:, :, start - q0 : stop - q0, :], start)

    n_layers = architecture(model).n_layers
    return hooks(model, [(hook_name("pattern", l), partial(record, layer=l)) for l in range(n_layers)])


def _decode_batch(
    model: Model, detector: Detector, items: Sequence[Any], batch: engine.Batch, *, chunk_size: int | None,
    stop: set[int],
) -> tuple[Tensor, list[str]]:
    """Greedy decoding (:func:`rhlens.engine.decode`), observing the newest row at every step."""
    padded = batch.padded
    width = padded.tokens.shape[1]
    state = detector.start_batch(model, items, padded)
    latest: list[Any] = [None] * architecture(model).n_layers
    total: list[Tensor] = []  # the running sum, once the first step has run

    def on_step(step: int, next_tokens: Tensor, active: Tensor) -> None:
        got = detector.collect(state, latest, width - 1 + step, next_tokens[:, None], active[:, None])
        total[:] = [got + total[0] if total else got]

    run = batch.runner()  # prompts only: every row's last prompt column is the last column
    gen = engine.decode(
        run, padded, max_new_tokens=detector.max_new_tokens, stop=stop, chunk_size=chunk_size, on_step=on_step,
        step_hooks=lambda: _observing(model, detector, state, latest),
    )
    return total[0], gen.texts(tokenizer_of(model))


def _forced_batch(
    model: Model, detector: Detector, items: Sequence[Any], batch: engine.Batch, *, chunk_size: int | None,
    stop: set[int],
) -> tuple[Tensor, list[str]]:
    """One teacher-forced pass; columns before the first observed row are prefilled unobserved,
    the rest runs in chunks with every layer observed from that row on."""
    tok = tokenizer_of(model)
    padded = batch.padded
    width = padded.tokens.shape[1]
    state = detector.start_batch(model, items, padded)
    from_col = detector.observed_from(state, padded, items).to(padded.tokens.device)  # [batch]
    first = int(from_col.min())
    cols = torch.arange(first, width - 1, device=from_col.device)
    valid = cols[None, :] >= from_col[:, None]  # [batch, n_observed]
    predicted = torch.zeros_like(valid, dtype=torch.long)
    latest: list[Any] = [None] * architecture(model).n_layers
    total: Tensor | None = None
    run = batch.runner()
    run.feed(padded, first, chunk_size)
    with _observing(model, detector, state, latest, first, width - 1):
        for start, end in engine.chunk_bounds(first, width, chunk_size):
            logits = run(padded.tokens[:, start:end], padded.attention_mask[:, start:end])
            s0, s1 = max(start, first), min(end, width - 1)
            if s0 >= s1:
                continue
            predicted[:, s0 - first : s1 - first] = logits[:, s0 - start : s1 - start].argmax(dim=-1)
            got = detector.collect(
                state, latest, s0, padded.tokens[:, s0 + 1 : s1 + 1], valid[:, s0 - first : s1 - first]
            )
            total = got if total is None else total + got
    assert total is not None
    responses = []
    for b in range(len(items)):
        pred = predicted[b][valid[b]].tolist()
        cut = next((i for i, t in enumerate(pred) if t in stop), len(pred))
        responses.append(tok.decode(pred[:cut], skip_special_tokens=True).strip())
    return total, responses
