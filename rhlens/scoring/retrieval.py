"""Retrieval scores per head (Wu et al., 2024), all heads at once, in bounded memory.

:func:`retrieval_scores` implements Wu et al.'s definition (``method="decode"``, their
``retrieval_head_detection.py``) and a teacher-forced variant (``method="forced"``).

How it runs. On the run engine (:mod:`rhlens.engine`, the one decoding loop of rhlens): one
hook per layer on ``hook_pattern`` reduces the attention rows being scored to their ``top_k`` key
positions right away (``[batch, head, k]`` indices) and looks them up in a ``[batch, context]``
table holding the prompt token at answer-span positions and ``-1`` elsewhere
(:func:`rhlens.scoring.answer_spans.answer_lookup`). The generated (or gold) token is then compared
with all layers, heads and examples in one tensor operation. Examples are batched (left-padded,
sorted by length); prompts go through the key/value cache in chunks of ``chunk_size`` tokens. As
in Wu et al.'s code, the part of the prompt that is never scored (all but the last prompt token;
in forced mode, everything before the first answer-predicting row) is prefilled with no pattern
hook attached, through fused SDPA attention on a HookedTransformer
(:func:`rhlens.adapter.fused.fused_attention`), so no pattern is computed there at all.

Memory. No full attention pattern is kept: per layer, attention memory is what the model's
forward itself needs for one chunk, ``O(batch x heads x chunk x context)``, plus ``O(batch x
heads x k)`` per layer for the reduced rows. Caveat: a ``TransformerBridge`` runs Hugging Face's
eager attention, so there attention memory per chunk is the full ``[batch, head, chunk,
context]`` pattern.

Faithful to Wu et al.'s ``retrieval_head_detection.py`` (``decode`` / ``retrieval_calculate``):
step 0 is the last prompt token's forward; the step that produces the stop token is scored; at
most one hit per head and step even with ``top_k > 1``; an answer-span position can hit at any
number of steps; the hit weight is ``1 / (answer-span tokens)`` (Wu's ``real_needle``); trials
whose ROUGE-1 recall of the answer is not above the gate are dropped, the score is the mean over
the rest. Decoding stops at :func:`rhlens.stopping.default_stop_ids` (EOS, the generation
config's EOS list, and every newline token: Llama's ``<0x0A>`` as in Wu's code). Deviations, all
deliberate:

- Span tokens come from the tokenizer's offset mapping (Wu: the first token window whose id set
  overlaps the needle's ids by > 90%).
- Several answer spans per example are one target: the weight is ``1 / (all their tokens)``.
- ROUGE-1 recall is :func:`rhlens.tasks.metrics.rouge1_recall` (lowercased word unigrams, no
  stemming; Wu: ``rouge_score`` with the Porter stemmer), the best over the answer and its aliases.
- When no example passes the gate, scores are zeros and a warning names the first responses
  (Wu's file would hold no trial).
- Batching pads on the left; hits equal the unbatched reference in the tests, but float rounding
  could in principle flip a near-tie in a top-k or an argmax.
"""

from functools import partial
from typing import Any, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens import engine
from rhlens.adapter import Model, architecture, hook_name, hooks, model_device, tokenizer_of
from rhlens.encoding import PaddedBatch, pad_id_of
from rhlens.scoring.answer_spans import ScoredExample, answer_lookup, check_method, encode_for_scoring
from rhlens.scoring.rouge_gate import head_scores_from_hits
from rhlens.scoring.results import HeadScores
from rhlens.stopping import default_stop_ids


def retrieval_scores(
    model: Model,
    examples: Sequence[Any],
    *,
    method: str = "decode",  # "decode" | "forced"; checked by check_method with its own message
    max_new_tokens: int = 50,
    rouge_gate: float | None = 0.5,
    top_k: int = 1,
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> HeadScores:
    """Wu et al.'s retrieval score of every attention head, averaged over ``examples``.

    ``method="decode"`` (Wu et al. exactly): greedy decoding from each prompt, stopping at EOS or
    a newline token or after ``max_new_tokens``. At every decoding step (step 0 is the forward
    of the last prompt position) and for every head, take the ``top_k`` key positions of the last
    query's attention. The head scores a hit when one of them lies in an answer span
    (``Example.answer_spans``, Wu's ``real_needle``) and the token generated at that step equals
    the prompt token there; each hit adds ``1 / (answer-span tokens)``, at most one hit per head
    per step (Wu's ``break``). The step that produces the stop token is scored too, as in Wu's
    loop. An example counts when the ROUGE-1 recall of the answer in the decoded response exceeds
    ``rouge_gate`` (``None``: always); a head's score is the mean over counted examples.

    ``method="forced"``: the gold completion (``" " + answer`` and EOS) is teacher-forced in one
    chunked pass; the query at position ``t - 1`` is scored against the gold token at ``t`` for
    every answer token including EOS. Differences from decode: (a) hits are counted for the gold
    tokens whether or not the model would have produced them, and the number of scored steps is
    the answer's length, not the response's; (b) the gate uses the teacher-forced greedy
    predictions (argmax at each answer position, cut at the first stop token) as the response;
    (c) one forward pass instead of one per token, so it is much faster. When the greedy output
    is the gold answer followed by EOS, both methods give identical hits and scores.

    Args:
        model: a ``HookedTransformer`` or ``TransformerBridge`` with a fast tokenizer.
        examples: :class:`rhlens.tasks.Example` records (prompt, answer, answer and needle
            character spans), each checked with ``validate()``.
        method: ``"decode"`` or ``"forced"``.
        max_new_tokens: decoding steps at most (Wu et al.: 50); unused by ``"forced"``.
        rouge_gate: ROUGE-1 recall an example must exceed to count; ``None`` disables the gate.
        top_k: key positions checked per head and step (Wu et al.: 1).
        batch_size: examples per forward.
        chunk_size: prompt tokens per prefill forward (``None``: the whole prompt at once).
        progress: show a tqdm bar over batches.

    Returns:
        :class:`HeadScores` with ``scores`` ``[n_layers, n_heads]`` per query head.

    Raises:
        TypeError: an element of ``examples`` is not an ``Example`` (e.g. a dict), naming its index.
        ValueError: naming the example when it is invalid (a span past the prompt's end ...), has
            no answer span, a span covers no token, or its prompt (plus ``max_new_tokens``, or
            plus the answer) exceeds the model's context.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks.example import Example
    >>> prompt = "the key is red . the sky is blue . Question : what is the key ? Answer :"
    >>> ex = Example(prompt=prompt, answer="red", needles=((11, 14),), task="kv", variant="symbolic")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([prompt]), seed=0)
    >>> hs = retrieval_scores(model, [ex], max_new_tokens=4, rouge_gate=None, progress=False)
    >>> hs.scores.shape, hs.n_counted
    (torch.Size([2, 4]), 1)
    """
    check_method(method)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    engine.chunk_bounds(0, 1, chunk_size)  # checks chunk_size
    items = encode_for_scoring(model, examples, method=method, max_new_tokens=max_new_tokens)
    hits, responses = _score_batches(
        model, items, method=method, top_k=top_k, max_new_tokens=max_new_tokens, batch_size=batch_size,
        chunk_size=chunk_size, progress=progress,
    )
    meta = {"method": method, "top_k": top_k, "max_new_tokens": max_new_tokens if method == "decode" else None}
    return head_scores_from_hits(model, items, hits, responses, rouge_gate=rouge_gate, meta=meta)


def _score_batches(
    model: Model, items: Sequence[ScoredExample], *, method: str, top_k: int, max_new_tokens: int, batch_size: int,
    chunk_size: int | None, progress: bool,
) -> tuple[Int[Tensor, "example layer head"], list[str]]:
    """Hits ``[n_examples, n_layers, n_heads]`` and responses of every example, batch by batch
    (length-sorted) on the run engine, in the caller's order."""
    arch = architecture(model)
    hits = torch.zeros(len(items), arch.n_layers, arch.n_heads, dtype=torch.long)
    responses = [""] * len(items)
    score_batch = _decode_batch if method == "decode" else _forced_batch
    tok = tokenizer_of(model)
    stop = default_stop_ids(tok)
    sequences = [it.enc.prompt_tokens if method == "decode" else it.enc.tokens for it in items]
    pad, device = pad_id_of(tok), model_device(model)
    with engine.running([model]):
        for rows, padded in engine.batched(
            sequences, pad_id=pad, device=device, batch_size=batch_size, progress=progress,
            desc=f"retrieval scores ({method})",
        ):
            batch_hits, batch_responses = score_batch(
                model, [items[i] for i in rows], padded, top_k=top_k, chunk_size=chunk_size,
                max_new_tokens=max_new_tokens, stop=stop,
            )
            hits[rows] = batch_hits.cpu()
            for i, text in zip(rows, batch_responses):
                responses[i] = text
    return hits, responses


class _TopKLookup:
    """Per layer, the needle-table entries at the top-k attended positions of selected rows.

    ``table`` ``[batch, width]`` is from :func:`rhlens.scoring.answer_spans.answer_lookup`; key positions ``>= width``
    (generated tokens) are never needle positions.
    """

    def __init__(self, table: Int[Tensor, "batch width"], top_k: int) -> None:
        self.table = table
        self.top_k = top_k

    def __call__(self, rows: Tensor) -> Int[Tensor, "batch head q k"]:
        """``rows`` ``[batch, head, q, key]`` attention -> ``[batch, head, q, k]`` needle tokens
        (``-1`` where the position is not in a needle)."""
        k = min(self.top_k, rows.shape[-1])
        idx = rows.topk(k, dim=-1).indices  # [batch, head, q, k]
        width = self.table.shape[1]
        b, h, q, _ = idx.shape
        flat = idx.clamp(max=width - 1).reshape(b, h * q * k)
        tokens = self.table.gather(1, flat).reshape(b, h, q, k)
        return torch.where(idx < width, tokens, -1)


def _decode_batch(
    model: Model, items: Sequence[ScoredExample], padded: PaddedBatch, *, top_k: int, chunk_size: int | None,
    max_new_tokens: int, stop: set[int],
) -> tuple[Int[Tensor, "batch layer head"], list[str]]:
    """Greedy decoding as Wu et al. (:func:`rhlens.engine.decode`: prefill all but the last prompt
    token without hooks, then one forward per step), with a reducing hook per layer during the
    decoding steps; each step's hits are counted in ``on_step``."""
    arch = architecture(model)
    device = padded.tokens.device
    n, width = padded.tokens.shape
    lookup = _TopKLookup(answer_lookup(items, width, padded.offsets).to(device), top_k)
    latest: list[Tensor | None] = [None] * arch.n_layers  # per layer [batch, head, k]
    hits = torch.zeros(n, arch.n_layers, arch.n_heads, dtype=torch.long, device=device)

    def record(pattern: Tensor, hook: Any, *, layer: int) -> None:
        # The last query row is the newest position.
        latest[layer] = lookup(pattern[:, :, -1:, :])[:, :, 0]

    def on_step(step: int, next_tokens: Tensor, active: Tensor) -> None:
        cand = torch.stack(latest)  # [layer, batch, head, k]
        hit = (cand == next_tokens[None, :, None, None]).any(dim=-1) & active[None, :, None]
        hits.add_(hit.permute(1, 0, 2).long())

    fwd_hooks = [(hook_name("pattern", l), partial(record, layer=l)) for l in range(arch.n_layers)]
    run = engine.Runner([model], n, torch.full((n,), width - 1, device=device))
    gen = engine.decode(
        run, padded, max_new_tokens=max_new_tokens, stop=stop, chunk_size=chunk_size, on_step=on_step,
        step_hooks=lambda: hooks(model, fwd_hooks),
    )
    return hits, gen.texts(tokenizer_of(model))


def _forced_batch(
    model: Model, items: Sequence[ScoredExample], padded: PaddedBatch, *, top_k: int, chunk_size: int | None,
    max_new_tokens: int, stop: set[int],
) -> tuple[Int[Tensor, "batch layer head"], list[str]]:
    """Teacher-forced pass over prompt + answer; only the answer-predicting rows are reduced.

    The columns before the first scored row are prefilled without hooks (fused attention where
    available); the rest runs with a reducing hook per layer, in chunks.

    Left padding aligns every row's end at column ``width - 1``, so the scored query columns are
    ``[width - 1 - A, width - 1)`` with ``A`` the longest answer (shorter answers mask the rest).
    """
    arch = architecture(model)
    tok = tokenizer_of(model)
    device = padded.tokens.device
    width = padded.tokens.shape[1]
    lookup = _TopKLookup(answer_lookup(items, width, padded.offsets).to(device), top_k)
    answer_lens = torch.tensor([len(it.enc.answer_tokens) for it in items], device=device)
    a = int(answer_lens.max())
    first = width - 1 - a  # first scored query column
    valid = torch.arange(a, device=device)[None, :] >= (a - answer_lens)[:, None]  # [batch, a]
    targets = padded.tokens[:, first + 1 :]  # [batch, a] gold token predicted by each scored row
    hits = torch.zeros(len(items), arch.n_layers, arch.n_heads, dtype=torch.long, device=device)
    predicted = torch.zeros(len(items), a, dtype=torch.long, device=device)

    def scored(start: int, end: int) -> tuple[int, int]:
        return max(start, first), min(end, width - 1)

    def record(pattern: Tensor, hook: Any, *, layer: int) -> None:
        step = engine.current_step()
        assert step is not None
        start, end = step.start, step.end
        s0, s1 = scored(start, end)
        if s0 >= s1:
            return
        q = pattern.shape[2]  # rows cover columns [end - q, end)
        cand = lookup(pattern[:, :, q - (end - s0) : q - (end - s1), :])  # [batch, head, n, k]
        gold = targets[:, s0 - first : s1 - first]  # [batch, n]
        hit = (cand == gold[:, None, :, None]).any(dim=-1) & valid[:, None, s0 - first : s1 - first]
        hits[:, layer].add_(hit.sum(dim=-1))

    fwd_hooks = [(hook_name("pattern", l), partial(record, layer=l)) for l in range(arch.n_layers)]
    run = engine.Runner([model], len(items), engine.first_decoding_column(padded, [it.enc for it in items]))
    run.feed(padded, first, chunk_size)  # nothing to score before the first answer-predicting row
    with hooks(model, fwd_hooks):
        for start, end in engine.chunk_bounds(first, width, chunk_size):
            logits = run(padded.tokens[:, start:end], padded.attention_mask[:, start:end])
            s0, s1 = scored(start, end)
            if s0 < s1:
                predicted[:, s0 - first : s1 - first] = logits[:, s0 - start : s1 - start].argmax(dim=-1)
    responses = []
    for b, n in enumerate(answer_lens.tolist()):
        pred = predicted[b, a - n :].tolist()
        cut = next((i for i, t in enumerate(pred) if t in stop), len(pred))
        responses.append(tok.decode(pred[:cut], skip_special_tokens=True).strip())
    return hits, responses
