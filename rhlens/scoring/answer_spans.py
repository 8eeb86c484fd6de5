"""Examples ready for retrieval scoring: encoded with checks, their *answer spans* (what a
retrieval head copies) located in the prompt's tokens, and the lookup table a scoring hook
compares attended positions with. The ROUGE gate and the step from hits to :class:`HeadScores`
live in :mod:`rhlens.scoring.rouge_gate`.

What is scored (Wu et al.'s ``real_needle``): an example's ``answer_spans``, the character spans
in the prompt that hold the answer's text; the evidence ``needles`` around them are what knockout,
blocking and patching refer to. Spans map to prompt tokens through the fast tokenizer's offset
mapping (a token belongs to a span when its characters overlap it). The hit weight is
``1 / (answer-span tokens)``; the gate is the ROUGE-1 recall of the answer (the best over
``answer`` and ``aliases``) in the response.
"""

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import Model, prepends_bos, tokenizer_of
from rhlens.encoding import EncodedExample, char_span_to_token_span, encode_for_model

METHODS = ("decode", "forced")


@dataclass(frozen=True)
class ScoredExample:
    """One example ready to score.

    Attributes:
        index: position in the caller's list.
        enc: the encoded example (prompt, plus answer and EOS for ``method="forced"``).
        answer_mask: bool ``[prompt_len]``, True at the prompt tokens of the answer spans.
        references: the gate's references: the answer, then its aliases.
    """

    index: int
    enc: EncodedExample
    answer_mask: Bool[Tensor, "prompt"]
    references: tuple[str, ...]

    @property
    def n_answer(self) -> int:
        """Answer-span tokens (the hit weight is ``1 / n_answer``)."""
        return int(self.answer_mask.sum())


def _where(index: int, example: Any) -> str:
    return f"Example {index} (task {getattr(example, 'task', '?')!r})"


def answer_mask(tokenizer: Any, example: Any, enc: EncodedExample, *, with_answer: bool, prepend_bos: bool
) -> Bool[Tensor, "prompt"]:
    """Bool ``[enc.prompt_len]``: the prompt tokens overlapping ``example.answer_spans``.

    The prompt is tokenized as :func:`rhlens.encoding.encode_example` did (with the completion
    when ``with_answer``, after BOS when ``prepend_bos``) and the spans are mapped through its
    offsets.

    Raises:
        ValueError: naming the example when it has no answer spans or a span covers no token.
    """
    spans = tuple(getattr(example, "answer_spans", None) or ())
    where = _where(enc.index, example)
    if not spans:
        raise ValueError(
            f"{where} has no answer spans (Example.answer_spans: the characters of the prompt a retrieval "
            "head copies); retrieval scores need at least one. Build examples with rhlens.tasks generators or "
            "loaders, or give answer_spans=((start, end), ...)."
        )
    text = example.prompt + example.completion if with_answer else example.prompt
    got = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    n_bos = 1 if prepend_bos and tokenizer.bos_token_id is not None else 0  # as encode_example
    offsets = [tuple(o) for o in got["offset_mapping"]][: enc.prompt_len - n_bos]
    if list(got["input_ids"][: len(offsets)]) != enc.prompt_tokens[n_bos:]:  # pragma: no cover - same tokenizer
        raise ValueError(f"{where}: re-tokenizing the prompt gave other tokens than its encoding")
    mask = torch.zeros(enc.prompt_len, dtype=torch.bool)
    for k, (c0, c1) in enumerate(spans):
        try:
            s, e = char_span_to_token_span(offsets, (int(c0), int(c1)))
        except ValueError as err:
            raise ValueError(
                f"{where}: answer span {k} at characters {c0}:{c1} ({example.prompt[c0:c1]!r}) covers no prompt "
                f"token: {err}"
            ) from None
        mask[n_bos + s : n_bos + e] = True
    return mask


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


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
    tok, bos = tokenizer_of(model), prepends_bos(model)
    return [
        ScoredExample(
            index=enc.index,
            enc=enc,
            answer_mask=answer_mask(tok, ex, enc, with_answer=forced, prepend_bos=bos),
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
