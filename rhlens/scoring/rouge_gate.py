"""The ROUGE gate on a scored example's response (Wu et al.'s retrieval score), and the warning
when no example passes it.

The gate compares the response with the answer and its aliases (the best over them); an example
counts when the value is above ``rouge_gate`` (Wu et al.: ``recall * 100 > 50``). Two measures
(:data:`GATES`): ``"rouge"`` (the default, Wu et al.'s): ROUGE-1 recall of the answer's words in
the response; ``"exact"``: SQuAD exact match (1 or 0) of the whole response after SQuAD's
normalisation (lowercase, punctuation and articles dropped), for tasks where recall is too loose.
docs/scoring.md lists the cases each gets wrong.
"""

import warnings
from typing import Literal, Sequence, get_args

import torch
from torch import Tensor

from rhlens.scoring.answer_spans import ScoredExample
from rhlens.tasks.metrics import exact_match as _exact_match
from rhlens.tasks.metrics import rouge1_recall as _rouge1_recall

Gate = Literal["rouge", "exact"]
GATES: tuple[str, ...] = get_args(Gate)


def check_gate(gate: str) -> None:
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}, got {gate!r}")


def answer_rouge(item: ScoredExample, response: str, gate: str = "rouge") -> float:
    """The gate's measure of ``response``: ROUGE-1 recall of the answer (``"rouge"``) or SQuAD
    exact match (``"exact"``), the best over the answer and its aliases.

    >>> from rhlens.encoding import EncodedExample
    >>> enc = EncodedExample(tokens=[1], prompt_len=1, needle_spans=(), completion_span=(1, 1))
    >>> item = ScoredExample(0, enc, torch.ones(1, dtype=torch.bool), ("New York City",))
    >>> round(answer_rouge(item, "New York"), 3), answer_rouge(item, "New York", "exact")
    (0.667, 0.0)
    """
    if gate == "exact":
        return float(_exact_match(response, list(item.references)))
    return max(float(_rouge1_recall(ref, response)) for ref in item.references)


def gate_counted(
    items: Sequence[ScoredExample], responses: Sequence[str], rouge_gate: float | None, gate: str = "rouge"
) -> tuple[Tensor, Tensor]:
    """``(value [n], counted [n])``: an example counts when its :func:`answer_rouge` (with
    ``gate``) is over ``rouge_gate`` (Wu et al.: ``recall * 100 > 50``); ``rouge_gate=None``
    counts every example."""
    check_gate(gate)
    rouge = torch.tensor([answer_rouge(it, r, gate) for it, r in zip(items, responses)], dtype=torch.float32)
    counted = torch.ones(len(items), dtype=torch.bool) if rouge_gate is None else rouge > rouge_gate
    return rouge, counted


def warn_none_counted(items: Sequence[ScoredExample], responses: Sequence[str], rouge: Tensor, rouge_gate: float) -> None:
    shown = "; ".join(
        f"example {it.index}: {r[:60]!r} (ROUGE-1 {float(g):.2f} against {it.references[0][:40]!r})"
        for it, r, g in list(zip(items, responses, rouge))[:3]
    )
    warnings.warn(
        f"retrieval scores: none of the {len(items)} examples passed the ROUGE gate (answer recall > {rouge_gate}), "
        f"so every head scores 0. First responses: {shown}. The model does not answer these prompts; use "
        "examples it answers, more max_new_tokens, or rouge_gate=None (rhlens scores --rouge-gate none) to score "
        "every trial.",
        UserWarning,
        stacklevel=5,  # the caller of retrieval_scores (through score_heads and finish)
    )
