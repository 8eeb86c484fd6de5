"""Pieces shared by the retrieval scorers: encoding examples with checks, the lookup table of
the *answer spans* (what a retrieval head copies), the ROUGE gate on the answer, and assembling
:class:`HeadScores` (with a warning when no example passes the gate).

What is scored (Wu et al.'s ``real_needle``): an example's ``answer_spans``, the character spans
in the prompt that hold the answer's text; the evidence ``needles`` around them are what knockout,
blocking and patching refer to. Spans map to prompt tokens through the fast tokenizer's offset
mapping (a token belongs to a span when its characters overlap it). The hit weight is
``1 / (answer-span tokens)``; the gate is the ROUGE-1 recall of the answer (the best over
``answer`` and ``aliases``) in the response.
"""

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import architecture, prepends_bos, tokenizer_of
from rhlens.encoding import EncodedExample, char_span_to_token_span, encode_example
from rhlens.scoring.results import HeadScores
from rhlens.tasks.metrics import rouge1_recall as _rouge1_recall

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


def encode_for_scoring(model: Any, examples: Sequence[Any], *, method: str, max_new_tokens: int) -> list[ScoredExample]:
    """Encode ``examples`` for ``model``, locate their answer spans and check each fits; errors
    name the example index and task."""
    check_method(method)
    if not len(examples):
        raise ValueError("retrieval scores need at least one example")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    tok = tokenizer_of(model)
    n_ctx = architecture(model).n_ctx
    bos = prepends_bos(model)
    forced = method == "forced"
    items = []
    for i, ex in enumerate(examples):
        enc = encode_example(tok, ex, with_answer=forced, prepend_bos=bos, index=i)
        mask = answer_mask(tok, ex, enc, with_answer=forced, prepend_bos=bos)
        need = len(enc.tokens) if forced else enc.prompt_len + max_new_tokens
        if need > n_ctx:
            what = (
                f"prompt of {enc.prompt_len} tokens plus the answer's {len(enc.tokens) - enc.prompt_len} (with EOS)"
                if forced
                else f"prompt of {enc.prompt_len} tokens plus max_new_tokens={max_new_tokens}"
            )
            raise ValueError(
                f"Example {i}: {what} is {need} tokens, over the model's context of {n_ctx}. "
                "Use shorter examples, a smaller max_new_tokens, or extend the context (rhlens.extend_context)."
            )
        references = (ex.answer, *tuple(getattr(ex, "aliases", ()) or ()))
        items.append(ScoredExample(index=i, enc=enc, answer_mask=mask, references=references))
    return items


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
        "examples it answers, more max_new_tokens, or rouge_gate=None to score every trial.",
        UserWarning,
        stacklevel=4,  # the caller of retrieval_scores
    )


def head_scores_from_hits(
    model: Any,
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


# Former names, kept while rhlens.scoring.retrieval moves to the new ones.
Item = ScoredExample
prepare = encode_for_scoring
needle_lookup = answer_lookup
assemble = head_scores_from_hits
