"""Examples ready for retrieval scoring: encoded with checks, their *answer spans* (what a
retrieval head copies) located in the prompt's tokens, and the lookup table a scoring hook
compares attended positions with. The ROUGE gate and the step from hits to :class:`HeadScores`
live in :mod:`rhlens.scoring.rouge_gate`.

What is scored (Wu et al.'s ``real_needle``): an example's ``answer_spans``, the character spans
in the prompt that hold the answer's text; the evidence ``needles`` around them are what knockout,
blocking and patching refer to. :func:`rhlens.encoding.encode_example` maps both to prompt tokens
once (``EncodedExample.answer_spans``, ``needle_spans``), through the fast tokenizer's offset
mapping (a token belongs to a span when its characters overlap it). The hit weight is
``1 / (answer-span tokens)``; the gate is the ROUGE-1 recall of the answer (the best over
``answer`` and ``aliases``) in the response.
"""

from dataclasses import dataclass
from typing import Any, Literal, Sequence, get_args

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import Model
from rhlens.encoding import EncodedExample, encode_for_model

Method = Literal["decode", "forced"]
"""``retrieval_scores``' methods: Wu et al.'s decoding and the teacher-forced one."""
METHODS: tuple[str, ...] = get_args(Method)
Rule = Literal["rhlens", "wu-literal"]
RULES: tuple[str, ...] = get_args(Rule)
"""``retrieval_scores``' rules: ``"rhlens"`` (the documented rule) and ``"wu-literal"`` (Wu et
al.'s code to the letter: :mod:`rhlens.scoring.wu_literal`)."""


@dataclass(frozen=True)
class ScoredExample:
    """One example ready to score.

    Attributes:
        index: position in the caller's list.
        enc: the encoded example (prompt, plus answer and EOS for ``method="forced"``).
        answer_mask: bool ``[prompt_len]``, True at the prompt tokens of the answer spans.
        references: the gate's references: the answer, then its aliases.
        span_tokens: the hit weight's denominator when it is not the number of ``answer_mask``
            tokens (``rule="wu-literal"``: the answer's own token count, Wu's ``needle_end -
            needle_start``, also when the window is cut by the prompt's end or not found).
    """

    index: int
    enc: EncodedExample
    answer_mask: Bool[Tensor, "prompt"]
    references: tuple[str, ...]
    span_tokens: int | None = None

    @property
    def n_answer(self) -> int:
        """Answer-span tokens (the hit weight is ``1 / n_answer``)."""
        return int(self.answer_mask.sum()) if self.span_tokens is None else self.span_tokens


def answer_mask(example: Any, enc: EncodedExample) -> Bool[Tensor, "prompt"]:
    """Bool ``[enc.prompt_len]``: the prompt tokens of the answer spans, as
    :func:`rhlens.encoding.encode_example` mapped them (``enc.answer_spans``).

    Raises:
        ValueError: naming the example when it has no answer spans.
    """
    if not enc.answer_spans:
        raise ValueError(
            f"Example {enc.index} (task {getattr(example, 'task', '?')!r}) has no answer spans (Example.answer_spans: "
            "the characters of the prompt a retrieval head copies); retrieval scores need at least one. Build "
            "examples with rhlens.tasks generators or loaders, or give answer_spans=((start, end), ...)."
        )
    mask = torch.zeros(enc.prompt_len, dtype=torch.bool)
    for s, e in enc.answer_spans:
        mask[s:e] = True
    return mask


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def check_rule(rule: str, method: str = "decode", gate: str = "rouge") -> None:
    """``ValueError`` unless ``rule`` is one of :data:`RULES`; ``"wu-literal"`` is Wu et al.'s
    decoding loop and ROUGE gate, so it takes ``method="decode"`` and ``gate="rouge"`` only."""
    if rule not in RULES:
        raise ValueError(f"rule must be one of {RULES}, got {rule!r}")
    if rule == "wu-literal" and (method, gate) != ("decode", "rouge"):
        raise ValueError(
            f"rule='wu-literal' reproduces Wu et al.'s code, which decodes and gates with ROUGE; got method={method!r}, "
            f"gate={gate!r}. Use method='decode' and gate='rouge' with it, or rule='rhlens' for the other options."
        )


def encode_for_scoring(model: Model, examples: Sequence[Any], *, method: str, max_new_tokens: int) -> list[ScoredExample]:
    """Check and encode ``examples`` for ``model`` (:func:`rhlens.encoding.encode_for_model`: valid
    ``Example`` records that fit the context with the answer, or with ``max_new_tokens``) and
    locate their answer spans; errors name the example index and task."""
    check_method(method)
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    forced = method == "forced"
    encoded = encode_for_model(
        model, examples, what="retrieval_scores", with_answer=forced, extra_tokens=0 if forced else max_new_tokens
    )
    return [
        ScoredExample(
            index=enc.index,
            enc=enc,
            answer_mask=answer_mask(ex, enc),
            references=(ex.answer, *tuple(getattr(ex, "aliases", ()) or ())),
        )
        for ex, enc in zip(examples, encoded)
    ]


def answer_lookup(items: Sequence[ScoredExample], width: int, offsets: Int[Tensor, "batch"]) -> Int[Tensor, "batch width"]:
    """``[batch, width]``: the prompt token at each answer-span column (left-padded
    coordinates), ``-1`` everywhere else. A top-k index ``i`` of row ``b`` is a hit for the
    generated token ``t`` exactly when ``table[b, i] == t``."""
    table = torch.full((len(items), width), -1, dtype=torch.long)
    for b, item in enumerate(items):
        off = int(offsets[b])
        prompt = torch.tensor(item.enc.prompt_tokens, dtype=torch.long)
        cols = item.answer_mask.nonzero().flatten()
        table[b, off + cols] = prompt[cols]
    return table
