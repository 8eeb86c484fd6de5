"""The ROUGE gate on a scored example's response (Wu et al.'s retrieval score), and the warning
when no example passes it.

The gate is the ROUGE-1 recall of the answer (the best over ``answer`` and ``aliases``) in the
response; an example counts when it is above ``rouge_gate`` (Wu et al.: ``recall * 100 > 50``).
"""

import warnings
from typing import Sequence

import torch
from torch import Tensor

from rhlens.scoring.answer_spans import ScoredExample
from rhlens.tasks.metrics import rouge1_recall as _rouge1_recall


def answer_rouge(item: ScoredExample, response: str) -> float:
    """ROUGE-1 recall of the answer in ``response``: the best over the answer and its aliases."""
    return max(float(_rouge1_recall(ref, response)) for ref in item.references)


def gate_counted(items: Sequence[ScoredExample], responses: Sequence[str], rouge_gate: float | None) -> tuple[Tensor, Tensor]:
    """``(rouge [n], counted [n])``: an example counts when its :func:`answer_rouge` is over
    ``rouge_gate`` (Wu et al.: ``recall * 100 > 50``); ``rouge_gate=None`` counts every example."""
    rouge = torch.tensor([answer_rouge(it, r) for it, r in zip(items, responses)], dtype=torch.float32)
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
