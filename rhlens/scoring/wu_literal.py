"""Wu et al.'s retrieval score to the letter (``retrieval_scores(rule="wu-literal")``): their
``retrieval_head_detection.py`` where it differs from rhlens's documented rule.

The loop, the hit rule and the mean over counted trials are rhlens's (:class:`WuDecode`); three
things follow Wu's code instead:

- **Stop**: decoding stops only at the token that is one line feed (``<0x0A>`` on Llama-2's
  tokenizer; :func:`rhlens.stopping.line_feed_ids` finds it in any vocabulary), never at EOS, for
  up to ``max_new_tokens`` steps; the step that emits it is scored. (Wu's code also stops at the
  fixed id 144, meaningful for one vocabulary only; rhlens does not.)
- **Span**: the answer's span is found by Wu's ``find_needle_idx`` (:func:`find_needle_window`):
  the answer is tokenized alone (no special tokens) and the span is the first window of that many
  prompt tokens whose token *set* covers more than 90% of the answer's token set; when none does,
  no position can hit. The hit weight is ``1 / (answer tokens)`` even when the window is cut by
  the prompt's end. ``Example.answer_spans`` and aliases are not used.
- **Gate**: ROUGE-1 recall of the answer (no aliases) in the response by the ``rouge_score``
  package with the Porter stemmer (:func:`rouge_score_recall`): ``runs`` passes for ``running``,
  and words without a Latin letter or digit never match (``東京`` fails for ``東京``).

When to use it: to compare with head-score files made by Wu et al.'s code (their published
``head_score/*.json``, loaded with :meth:`HeadScores.from_wu_json`). The documented rule
(``rule="rhlens"``) is the one to use otherwise: it stops at EOS, scores exactly the characters
the example marks as the answer (Wu's window misses kv values in JSON quotes and SummHay ids),
and gates any script.

>>> find_needle_window([5, 1, 2, 3, 4, 9], [2, 3, 4])
(2, 5)
>>> find_needle_window([5, 1, 2, 3], [2, 3, 4])  # 2 of 3 tokens: 67% is not above 90%
(-1, -1)
"""

from functools import lru_cache
from typing import Any, Sequence

import torch
from torch import Tensor

from rhlens.adapter import Model, tokenizer_of
from rhlens.scoring.answer_spans import ScoredExample, encode_for_scoring
from rhlens.scoring.wu import WuDecode
from rhlens.stopping import line_feed_ids

OVERLAP = 0.9
"""Wu's ``find_needle_idx``: a window matches when its token set covers more than this share."""


def find_needle_window(prompt: Sequence[int], needle: Sequence[int]) -> tuple[int, int]:
    """Wu's ``find_needle_idx``: ``(i, i + len(needle))`` for the first ``i`` whose window
    ``prompt[i : i + len(needle)]`` (shorter at the prompt's end) holds more than 90% of the
    distinct tokens of ``needle``; ``(-1, -1)`` when no window does. Runs in ``O(len(prompt))``.

    Raises:
        ValueError: ``needle`` is empty.
    """
    if not needle:
        raise ValueError("find_needle_window: the needle has no tokens")
    wanted, width = set(needle), len(needle)
    counts: dict[int, int] = {}
    covered = 0

    def add(token: int, d: int) -> None:
        nonlocal covered
        if token in wanted:
            before = counts.get(token, 0)
            counts[token] = before + d
            covered += (before == 0) - (before + d == 0)

    for t in prompt[:width]:
        add(t, 1)
    for i in range(len(prompt)):
        if i:
            add(prompt[i - 1], -1)
            if i + width - 1 < len(prompt):
                add(prompt[i + width - 1], 1)
        if covered / len(wanted) > OVERLAP:
            return i, i + width
    return -1, -1


@lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError as e:
        raise ImportError(
            "rule='wu-literal' gates with the rouge_score package as Wu et al. do (ROUGE-1 recall, Porter stemmer), "
            "and it is not installed: pip install 'rhlens[wu]' (or pip install rouge-score), or pass rouge_gate=None "
            "(rhlens scores --rouge-gate none) to count every trial."
        ) from e
    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=True)


def rouge_score_recall(reference: str, response: str) -> float:
    """Wu's gate value: ``rouge_score``'s ROUGE-1 recall of ``reference`` in ``response`` with the
    Porter stemmer (needs the ``rouge_score`` package: ``pip install 'rhlens[wu]'``)."""
    return float(_scorer().score(reference, response)["rouge1"].recall)


class WuLiteral(WuDecode):
    """:class:`WuDecode` with Wu et al.'s stop rule, needle window and ``rouge_score`` gate (see
    the module docstring); ``gate`` must be ``"rouge"``."""

    name = "wu_literal"
    rule = "wu-literal"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.gate != "rouge":
            raise ValueError(f"WuLiteral gates with ROUGE as Wu et al. do; got gate={self.gate!r}")

    def prepare(self, model: Model, examples: Sequence[Any]) -> list[ScoredExample]:
        tok = tokenizer_of(model)
        items = encode_for_scoring(model, examples, method="decode", max_new_tokens=self.max_new_tokens)
        out = []
        for ex, it in zip(examples, items):
            needle = list(tok(ex.answer, add_special_tokens=False)["input_ids"])
            if not needle:
                raise ValueError(f"Example {it.index}: its answer {ex.answer!r} has no tokens, so Wu's needle window "
                                 "(find_needle_idx) is undefined")
            start, end = find_needle_window(it.enc.prompt_tokens, needle)
            mask = torch.zeros(it.enc.prompt_len, dtype=torch.bool)
            if start >= 0:
                mask[start:end] = True
            out.append(ScoredExample(it.index, it.enc, mask, (ex.answer,), span_tokens=len(needle)))
        return out

    def stop_ids(self, tokenizer: Any) -> set[int]:
        return line_feed_ids(tokenizer)

    def gate_values(self, items: Sequence[ScoredExample], responses: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Wu's gate: ``rouge_score`` ROUGE-1 recall (stemmed) of the answer over ``rouge_gate``;
        ``rouge_gate=None`` counts every trial and computes no gate value (NaN, so that scoring
        without a gate does not need ``rouge_score``)."""
        n = len(items)
        if self.rouge_gate is None:
            return torch.full((n,), float("nan")), torch.ones(n, dtype=torch.bool)
        rouge = torch.tensor([rouge_score_recall(it.references[0], r) for it, r in zip(items, responses)],
                             dtype=torch.float32)
        return rouge, rouge > self.rouge_gate
