"""Attention mass: how much of a head's attention lands on the evidence, from where the answer is made.

The detector public analysis repositories run beside Wu et al.'s score: for every head, the
attention probability summed over the *target* keys (the needle's tokens, or the answer span's),
averaged over the *rows* that make the answer (the last prompt position, or every row that
predicts an answer token under teacher forcing, EOS included), then averaged over examples. No
greedy decoding and no gate: every example counts.

One engine pass over the prompt (``rows="last"``) or prompt + answer (``rows="answer"``),
pattern hooks only from the first scored row on (:func:`rhlens.scoring.detectors.rows.row_attention`).
"""

from typing import Any, Sequence

import torch

from rhlens.adapter import Model, architecture, prepends_bos, tokenizer_of
from rhlens.encoding import encode_for_model
from rhlens.scoring.answer_spans import answer_mask
from rhlens.scoring.detectors.rows import row_attention
from rhlens.scoring.results import HeadScores

ROWS = ("last", "answer")
TARGETS = ("needle", "answer")


def attention_mass(
    model: Model,
    examples: Sequence[Any],
    *,
    rows: str = "last",
    target: str = "needle",
    batch_size: int = 8,
    chunk_size: int | None = 512,
    progress: bool = True,
) -> HeadScores:
    """Every head's attention mass on ``target`` from ``rows``, averaged over ``examples``.

    Args:
        rows: ``"last"`` (the last prompt position, the row that predicts the answer's first
            token) or ``"answer"`` (every teacher-forced row that predicts an answer token or EOS,
            averaged).
        target: ``"needle"`` (the evidence ``Example.needles``) or ``"answer"`` (the copied
            ``Example.answer_spans``).

    Returns:
        :class:`HeadScores` whose ``per_example`` ``[n_examples, n_layers, n_heads]`` (query heads)
        is the mass in ``[0, 1]`` on each example; every example is counted.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((0, 18),), "niah", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]), seed=0)
    >>> hs = attention_mass(model, [ex], progress=False)
    >>> hs.scores.shape, bool(((hs.scores > 0) & (hs.scores < 1)).all())
    (torch.Size([2, 4]), True)
    """
    if rows not in ROWS:
        raise ValueError(f"attention_mass: rows must be one of {ROWS}, got {rows!r}")
    if target not in TARGETS:
        raise ValueError(f"attention_mass: target must be one of {TARGETS}, got {target!r}")
    forced = rows == "answer"
    encoded = encode_for_model(model, examples, what="attention_mass", with_answer=forced)
    tok, bos = tokenizer_of(model), prepends_bos(model)
    keys, masks = [], []
    for ex, enc in zip(examples, encoded):
        n = len(enc.tokens)
        if target == "needle":
            key = enc.needle_mask(n)
        else:
            key = torch.zeros(n, dtype=torch.bool)
            key[: enc.prompt_len] = answer_mask(tok, ex, enc, with_answer=forced, prepend_bos=bos)
        row = torch.zeros(1, n, dtype=torch.bool)
        if forced:
            row[0, enc.prompt_len - 1 : n - 1] = True
        else:
            row[0, enc.prompt_len - 1] = True
        keys.append(key)
        masks.append(row)
    arch = architecture(model)
    per_example = torch.zeros(len(examples), arch.n_layers, arch.n_heads)

    def reduce(i: int, means: torch.Tensor) -> None:
        per_example[i] = means[0][..., keys[i]].sum(dim=-1)

    row_attention(model, [e.tokens for e in encoded], masks, reduce, batch_size=batch_size, chunk_size=chunk_size,
                  progress=progress, desc=f"attention mass ({rows} -> {target})")
    return HeadScores(
        per_example=per_example,
        n_kv_heads=arch.n_kv_heads, meta={"method": "attention_mass", "rows": rows, "target": target},
    )
