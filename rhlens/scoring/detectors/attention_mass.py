"""Attention mass: how much of a head's attention lands on the evidence, from where the answer is made.

The detector public analysis repositories run beside Wu et al.'s score: for every head, the
attention probability summed over the *target* keys (the needle's tokens, or the answer span's),
averaged over the *rows* that make the answer (the last prompt position, or every row that
predicts an answer token under teacher forcing, EOS included), then averaged over examples. No
greedy decoding and no gate: every example counts.

A detector behind the scoring seam (:class:`AttentionMass`, run by
:func:`rhlens.scoring.detector.score_heads`): one teacher-forced pass over prompt + answer, the
prompt prefilled unobserved up to the last prompt position, each observed attention row reduced
to its mass on the target right away.
"""

from typing import Any, Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import Model, architecture
from rhlens.encoding import EncodedExample, PaddedBatch, encode_for_model
from rhlens.scoring.answer_spans import answer_mask
from rhlens.scoring.detector import Detector, score_heads
from rhlens.scoring.results import HeadScores

ROWS = ("last", "answer")
TARGETS = ("needle", "answer")


class _Item:
    def __init__(self, enc: EncodedExample, keys: Bool[Tensor, "pos"]) -> None:
        self.enc, self.keys = enc, keys


class AttentionMass(Detector):
    """Attention mass on ``target`` (``"needle"`` or ``"answer"``) from ``rows`` (``"last"`` or
    ``"answer"``); see the module docstring."""

    name = "attention_mass"
    decodes = False

    def __init__(self, *, rows: str = "last", target: str = "needle") -> None:
        if rows not in ROWS:
            raise ValueError(f"attention_mass: rows must be one of {ROWS}, got {rows!r}")
        if target not in TARGETS:
            raise ValueError(f"attention_mass: target must be one of {TARGETS}, got {target!r}")
        self.rows, self.target = rows, target

    @property
    def label(self) -> str:
        return f"attention mass ({self.rows} -> {self.target})"

    def prepare(self, model: Model, examples: Sequence[Any]) -> list[_Item]:
        encoded = encode_for_model(model, examples, what="attention_mass", with_answer=True)
        items = []
        for ex, enc in zip(examples, encoded):
            if self.target == "needle":
                keys = enc.needle_mask(len(enc.tokens))
            else:
                keys = torch.zeros(len(enc.tokens), dtype=torch.bool)
                keys[: enc.prompt_len] = answer_mask(ex, enc)
            items.append(_Item(enc, keys))
        return items

    def start_batch(self, model: Model, items: Sequence[_Item], padded: PaddedBatch) -> tuple[Tensor, Tensor]:
        """``(key table [batch, width] float, last prompt column [batch])``."""
        width = padded.tokens.shape[1]
        table = torch.zeros(len(items), width)
        for b, it in enumerate(items):
            table[b, int(padded.offsets[b]) :] = it.keys.float()
        last = padded.offsets + torch.tensor([it.enc.prompt_len - 1 for it in items], device=padded.offsets.device)
        return table.to(padded.tokens.device), last

    def reduce(self, state: tuple[Tensor, Tensor], layer: int, rows: Tensor, start: int) -> Tensor:
        table = state[0][:, : rows.shape[-1]]
        return torch.einsum("bhqk,bk->bhq", rows.float(), table)  # [batch, head, q]

    def collect(
        self, state: tuple[Tensor, Tensor], reduced: list[Any], start: int, following: Int[Tensor, "batch q"],
        valid: Bool[Tensor, "batch q"],
    ) -> Tensor:
        mass = torch.stack(reduced)  # [layer, batch, head, q]
        if self.rows == "last":
            cols = torch.arange(start, start + valid.shape[1], device=valid.device)
            valid = valid & (cols[None, :] == state[1][:, None])
        return (mass * valid[None, :, None, :]).sum(dim=-1).permute(1, 0, 2).double()  # [batch, layer, head]

    def finish(self, model: Model, items: Sequence[_Item], values: Tensor, responses: list[str]) -> HeadScores:
        n_rows = torch.tensor([1 if self.rows == "last" else len(it.enc.tokens) - it.enc.prompt_len for it in items])
        arch = architecture(model)
        return HeadScores(per_example=(values / n_rows[:, None, None]).float(), n_kv_heads=arch.n_kv_heads,
                          meta={"detector": self.name, "method": "attention_mass", "rows": self.rows,
                                "target": self.target})


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
    """Every head's attention mass on ``target`` from ``rows``, averaged over ``examples``
    (:class:`AttentionMass` run by :func:`rhlens.scoring.detector.score_heads`).

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
    detector = AttentionMass(rows=rows, target=target)
    return score_heads(model, examples, detector, batch_size=batch_size, chunk_size=chunk_size, progress=progress)
