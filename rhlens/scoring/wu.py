"""Wu et al.'s retrieval score as two detectors (:mod:`rhlens.scoring.detector`): :class:`WuDecode`
(their rule: greedy decoding) and :class:`WuForced` (the gold completion teacher-forced).

Both reduce each observed attention row to its ``top_k`` key positions right away and look them
up in a ``[batch, context]`` table holding the prompt token at answer-span positions and ``-1``
elsewhere (:func:`rhlens.scoring.answer_spans.answer_lookup`); a head hits at a row when one of
them holds the token that follows the row (at most one hit per head and row, Wu's ``break``).
Finishing divides hits by the answer-span tokens and applies the ROUGE gate
(:mod:`rhlens.scoring.rouge_gate`). The rule and its deviations from Wu's code are documented
in :func:`rhlens.retrieval_scores`.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.scoring.detector import score_heads
>>> from rhlens.tasks.example import Example
>>> prompt = "the key is red . Question : what is the key ? Answer :"
>>> ex = Example(prompt=prompt, answer="red", needles=((11, 14),), task="kv", variant="symbolic")
>>> model = tiny_llama(tokenizer=word_level_tokenizer([prompt]), seed=0)
>>> hs = score_heads(model, [ex], WuDecode(max_new_tokens=3, rouge_gate=None), progress=False)
>>> hs.meta["method"], hs.trials.answer_tokens.tolist()
('decode', [1])
"""

from typing import Any, Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import Model, architecture, tokenizer_of
from rhlens.encoding import PaddedBatch
from rhlens.scoring.answer_spans import ScoredExample, answer_lookup, encode_for_scoring
from rhlens.scoring.detector import Detector
from rhlens.scoring.results import HeadScores, RetrievalTrials
from rhlens.scoring.rouge_gate import check_gate, gate_counted, warn_none_counted


class _TopKLookup:
    """The answer-lookup entries at the top-k attended positions of attention rows.

    ``table`` ``[batch, width]`` is from :func:`rhlens.scoring.answer_spans.answer_lookup`; key
    positions ``>= width`` (generated tokens) are never answer-span positions.
    """

    def __init__(self, table: Int[Tensor, "batch width"], top_k: int, classes: Tensor | None = None) -> None:
        self.classes = None if classes is None else classes.to(table.device)
        self.table = table if classes is None else torch.where(table >= 0, self.same_text(table.clamp(min=0)), -1)
        self.top_k = top_k

    def same_text(self, tokens: Tensor) -> Tensor:
        """``tokens`` as compared by the hit rule: their ids, or with ``classes`` their word-boundary class."""
        return tokens if self.classes is None else self.classes[tokens]

    def __call__(self, rows: Tensor) -> Int[Tensor, "batch head q k"]:
        """``rows`` ``[batch, head, q, key]`` attention -> ``[batch, head, q, k]`` prompt tokens
        (``-1`` where the position is not in an answer span)."""
        k = min(self.top_k, rows.shape[-1])
        idx = rows.topk(k, dim=-1).indices  # [batch, head, q, k]
        width = self.table.shape[1]
        b, h, q, _ = idx.shape
        flat = idx.clamp(max=width - 1).reshape(b, h * q * k)
        tokens = self.table.gather(1, flat).reshape(b, h, q, k)
        return torch.where(idx < width, tokens, -1)


def word_boundary_classes(tokenizer: Any, n_vocab: int) -> Int[Tensor, "vocab"]:
    """Per token id, one id shared by every token with the same text once a leading word-boundary
    marker (SentencePiece's ``▁``, byte-level BPE's ``Ġ``, a space) is dropped: ``▁p`` and ``p``
    are one class.

    >>> class Tok:  # any tokenizer: len() and convert_ids_to_tokens
    ...     vocab = ["<s>", "p", "▁p", "q", "Ġq", "▁"]
    ...     def __len__(self): return len(self.vocab)
    ...     def convert_ids_to_tokens(self, ids): return [self.vocab[i] for i in ids]
    >>> word_boundary_classes(Tok(), 6).tolist()
    [0, 1, 1, 3, 3, 5]
    """
    classes = torch.arange(max(n_vocab, len(tokenizer)))
    first: dict[str, int] = {}
    for i, text in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
        if text is None:
            continue
        key = text[1:] if len(text) > 1 and text[0] in ("\u2581", "\u0120", " ") else text
        classes[i] = first.setdefault(key, i)
    return classes


class _WuRetrieval(Detector):
    """What :class:`WuDecode` and :class:`WuForced` share: top-k lookup, hit rule, gate."""

    method: str
    rule = "rhlens"  # retrieval_scores' rule (rhlens.scoring.answer_spans.RULES)
    classes: Tensor | None = None  # word-boundary classes of the hit rule (forced mode), else ids

    def __init__(
        self, *, rouge_gate: float | None = 0.5, top_k: int = 1, max_new_tokens: int = 50, gate: str = "rouge"
    ) -> None:
        check_gate(gate)
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        self.rouge_gate, self.top_k, self.max_new_tokens, self.gate = rouge_gate, top_k, max_new_tokens, gate

    @property
    def label(self) -> str:
        return f"retrieval scores ({self.method})"

    def prepare(self, model: Model, examples: Sequence[Any]) -> list[ScoredExample]:
        return encode_for_scoring(model, examples, method=self.method, max_new_tokens=self.max_new_tokens)

    def start_batch(self, model: Model, items: Sequence[ScoredExample], padded: PaddedBatch) -> _TopKLookup:
        table = answer_lookup(items, padded.tokens.shape[1], padded.offsets)
        return _TopKLookup(table.to(padded.tokens.device), self.top_k, self.classes)

    def reduce(self, state: _TopKLookup, layer: int, rows: Tensor, start: int) -> Tensor:
        return state(rows)  # [batch, head, q, k]

    def collect(
        self, state: _TopKLookup, reduced: list[Any], start: int, following: Int[Tensor, "batch q"],
        valid: Bool[Tensor, "batch q"],
    ) -> Int[Tensor, "batch layer head"]:
        cand = torch.stack(reduced)  # [layer, batch, head, q, k]
        hit = (cand == state.same_text(following)[None, :, None, :, None]).any(dim=-1) & valid[None, :, None, :]
        return hit.sum(dim=-1).permute(1, 0, 2)  # at most one hit per head and row

    def gate_values(self, items: Sequence[ScoredExample], responses: Sequence[str]) -> tuple[Tensor, Tensor]:
        """``(value [n], counted [n])`` of the gate (:func:`rhlens.scoring.rouge_gate.gate_counted`)."""
        return gate_counted(items, responses, self.rouge_gate, self.gate)

    def finish(self, model: Model, items: Sequence[ScoredExample], values: Tensor, responses: list[str]) -> HeadScores:
        """Score = hits / answer-span tokens, gated; warns (``UserWarning``) when no example passes
        the gate, naming the first responses."""
        arch = architecture(model)
        hits = values.long()
        answer_tokens = torch.tensor([it.n_answer for it in items], dtype=torch.long)
        per_example = (hits.double() / answer_tokens.double()[:, None, None]).float()
        rouge, counted = self.gate_values(items, responses)
        if self.rouge_gate is not None and not bool(counted.any()):
            warn_none_counted(items, responses, rouge, self.rouge_gate)
        meta = {
            "detector": self.name, "method": self.method, "rule": self.rule, "top_k": self.top_k,
            "max_new_tokens": self.max_new_tokens if self.decodes else None, "rouge_gate": self.rouge_gate,
            "gate": self.gate,
            "n_layers": arch.n_layers, "n_heads": arch.n_heads, "n_kv_heads": arch.n_kv_heads, "model_kind": arch.kind,
        }
        trials = RetrievalTrials(responses=list(responses), hits=hits, answer_tokens=answer_tokens, rouge=rouge)
        return HeadScores(per_example=per_example, counted=counted, n_kv_heads=arch.n_kv_heads, meta=meta, trials=trials)


class WuDecode(_WuRetrieval):
    """Wu et al.'s retrieval score: greedy decoding, each step's newest query row scored against the
    generated token (step 0: the last prompt token; the step producing the stop token included)."""

    name = "wu_decode"
    method = "decode"
    decodes = True


class WuForced(_WuRetrieval):
    """Teacher-forced retrieval score: the gold completion (``" " + answer`` and EOS) in one pass,
    the row before each completion token scored against it.

    Word boundaries: the gold completion starts a word (``" " + value`` gives SentencePiece's
    ``▁pe``), while the context may hold the value inside quotes or after punctuation (``pe``),
    so a copied token and the gold one can differ only by the word-boundary marker. Forced mode
    therefore compares tokens by :func:`word_boundary_classes` (``▁pe`` hits on ``pe``), and a
    head that copies every answer token scores 1.0 on every tokenizer family. Decode mode keeps
    Wu et al.'s exact ids: there the model's own tokens are compared with the context.
    """

    name = "wu_forced"
    method = "forced"
    decodes = False

    def prepare(self, model: Model, examples: Sequence[Any]) -> list[ScoredExample]:
        items = super().prepare(model, examples)
        self.classes = word_boundary_classes(tokenizer_of(model), architecture(model).d_vocab)
        return items
