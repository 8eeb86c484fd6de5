"""The ROUGE gate on a scored example's response, and the step from hit counts to
:class:`HeadScores` (with a warning when no example passes the gate).

The gate is the ROUGE-1 recall of the answer (the best over ``answer`` and ``aliases``) in the
response; an example counts when it is above ``rouge_gate`` (Wu et al.: ``recall * 100 > 50``).
"""

import warnings
from typing import Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens.adapter import Model, architecture
from rhlens.scoring.answer_spans import ScoredExample
from rhlens.scoring.results import HeadScores
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


def _warn_none_counted(items: Sequence[ScoredExample], responses: Sequence[str], rouge: Tensor, rouge_gate: float) -> None:
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
        stacklevel=4,  # the caller of retrieval_scores
    )


def head_scores_from_hits(
    model: Model,
    items: Sequence[ScoredExample],
    hits: Int[Tensor, "example layer head"],
    responses: Sequence[str],
    *,
    rouge_gate: float | None,
    meta: dict,
) -> HeadScores:
    """Turn hit counts into :class:`HeadScores` (score = hits / answer-span tokens, gated);
    warns (``UserWarning``) when no example passes the gate, naming the first responses."""
    arch = architecture(model)
    answer_tokens = torch.tensor([it.n_answer for it in items], dtype=torch.long)
    per_example = (hits.double().cpu() / answer_tokens.double()[:, None, None]).float()
    rouge, counted = gate_counted(items, responses, rouge_gate)
    if rouge_gate is not None and not bool(counted.any()):
        _warn_none_counted(items, responses, rouge, rouge_gate)
    return HeadScores(
        per_example=per_example,
        counted=counted,
        responses=list(responses),
        hits=hits.cpu(),
        answer_tokens=answer_tokens,
        rouge=rouge,
        n_kv_heads=arch.n_kv_heads,
        meta={
            **meta,
            "rouge_gate": rouge_gate,
            "n_layers": arch.n_layers,
            "n_heads": arch.n_heads,
            "n_kv_heads": arch.n_kv_heads,
            "model_kind": arch.kind,
        },
    )
