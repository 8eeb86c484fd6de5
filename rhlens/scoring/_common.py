"""Pieces shared by the fast scorer and the reference implementations: encoding examples with
checks, the needle lookup table, the ROUGE gate, and assembling :class:`HeadScores`."""

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens.adapter import architecture, prepends_bos, tokenizer_of
from rhlens.encoding import EncodedExample, encode_example
from rhlens.scoring.results import HeadScores

METHODS = ("decode", "forced")


@dataclass(frozen=True)
class Item:
    """One example ready to score.

    Attributes:
        index: position in the caller's list.
        enc: the encoded example (prompt, plus answer and EOS for ``method="forced"``).
        needle_text: the needle texts joined by a space (the ROUGE reference).
        n_needle: number of needle tokens (the hit weight is ``1 / n_needle``).
    """

    index: int
    enc: EncodedExample
    needle_text: str
    n_needle: int


def check_method(method: str) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def prepare(model: Any, examples: Sequence[Any], *, method: str, max_new_tokens: int) -> list[Item]:
    """Encode ``examples`` for ``model`` and check each fits; errors name the example index."""
    check_method(method)
    if not len(examples):
        raise ValueError("retrieval scores need at least one example")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    tok = tokenizer_of(model)
    n_ctx = architecture(model).n_ctx
    bos = prepends_bos(model)
    items = []
    for i, ex in enumerate(examples):
        if not getattr(ex, "needles", None):
            raise ValueError(f"Example {i} (task {getattr(ex, 'task', '?')!r}) has no needle spans; retrieval scores need one")
        enc = encode_example(tok, ex, with_answer=method == "forced", prepend_bos=bos, index=i)
        mask = enc.needle_mask(enc.prompt_len)
        n_needle = int(mask.sum())
        if n_needle == 0:  # pragma: no cover - encode_example already raises
            raise ValueError(f"Example {i}: its needles cover no prompt token")
        need = enc.prompt_len + max_new_tokens if method == "decode" else len(enc.tokens)
        if need > n_ctx:
            what = (
                f"prompt of {enc.prompt_len} tokens plus max_new_tokens={max_new_tokens}"
                if method == "decode"
                else f"prompt of {enc.prompt_len} tokens plus the answer's {len(enc.tokens) - enc.prompt_len} (with EOS)"
            )
            raise ValueError(
                f"Example {i}: {what} is {need} tokens, over the model's context of {n_ctx}. "
                "Use shorter examples, a smaller max_new_tokens, or extend the context (rhlens.extend_context)."
            )
        items.append(Item(index=i, enc=enc, needle_text=" ".join(ex.needle_texts), n_needle=n_needle))
    return items


def needle_lookup(items: Sequence[Item], width: int, offsets: Int[Tensor, "batch"]) -> Int[Tensor, "batch width"]:
    """``[batch, width]``: the prompt token at each needle column (left-padded coordinates),
    ``-1`` everywhere else. A top-k index ``i`` of row ``b`` is a hit for generated token ``t``
    exactly when ``table[b, i] == t``."""
    table = torch.full((len(items), width), -1, dtype=torch.long)
    for b, item in enumerate(items):
        off = int(offsets[b])
        prompt = torch.tensor(item.enc.prompt_tokens, dtype=torch.long)
        mask = item.enc.needle_mask(item.enc.prompt_len)
        cols = mask.nonzero().flatten()
        table[b, off + cols] = prompt[cols]
    return table


def rouge1_recall(reference: str, prediction: str) -> float:
    """ROUGE-1 recall of ``reference`` in ``prediction`` (delegates to the task layer)."""
    from rhlens.tasks.metrics import rouge1_recall as _rouge1_recall

    return float(_rouge1_recall(reference, prediction))


def gate(items: Sequence[Item], responses: Sequence[str], rouge_gate: float | None) -> tuple[Tensor, Tensor]:
    """``(rouge [n], counted [n])``: an example counts when its ROUGE-1 recall > ``rouge_gate``
    (Wu et al.: ``recall * 100 > 50``); ``rouge_gate=None`` counts every example."""
    rouge = torch.tensor([rouge1_recall(it.needle_text, r) for it, r in zip(items, responses)], dtype=torch.float32)
    counted = torch.ones(len(items), dtype=torch.bool) if rouge_gate is None else rouge > rouge_gate
    return rouge, counted


def assemble(
    model: Any,
    items: Sequence[Item],
    hits: Int[Tensor, "example layer head"],
    responses: Sequence[str],
    *,
    rouge_gate: float | None,
    meta: dict,
) -> HeadScores:
    """Turn hit counts into :class:`HeadScores` (score = hits / needle tokens, gated)."""
    arch = architecture(model)
    needle_tokens = torch.tensor([it.n_needle for it in items], dtype=torch.long)
    per_example = (hits.double() / needle_tokens.double()[:, None, None]).float()
    rouge, counted = gate(items, responses, rouge_gate)
    return HeadScores(
        per_example=per_example,
        counted=counted,
        responses=list(responses),
        hits=hits.cpu(),
        needle_tokens=needle_tokens,
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
