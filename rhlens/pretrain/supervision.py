"""Attention supervision: teach one head to attend to the previous token and one to do induction.

Trained on next-token loss alone, rhlens's tiny models (a 2,400-word vocabulary, 1-3 layers)
learn fixed-offset copying long before content-based induction heads form: on recurring random
segments the held-out induction loss stays at chance for 1,500 steps. An auxiliary loss on two
heads' attention patterns forms a generalizing induction circuit within about 1,000 steps: the
previous-token head is pulled towards position ``t - 1`` and the induction head towards the
position right after the most recent earlier occurrence of the current token. Everything else
(their value/output circuits, the rest of the model) is learned from the next-token loss.

>>> import torch
>>> tokens = torch.tensor([[1, 7, 8, 9, 7, 8, 0]])   # BOS, "7 8 9 7 8", one pad
>>> induction_targets(tokens, pad_id=0).tolist()
[[-1, -1, -1, -1, 2, 3, -1]]
>>> previous_token_targets(tokens, pad_id=0).tolist()
[[-1, 0, 1, 2, 3, 4, -1]]
"""

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens.adapter import architecture, hook_name, hooks
from rhlens.heads import Head


@dataclass(frozen=True)
class AttentionSupervision:
    """Which heads to supervise and how strongly (``weight`` times the mean negative
    log-attention on the targets, summed over the two heads)."""

    previous_token_head: Head
    induction_head: Head
    weight: float = 0.5

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "supervision") -> "AttentionSupervision":
        known = {"previous_token_head", "induction_head", "weight"}
        unknown = set(data) - known
        if unknown or not {"previous_token_head", "induction_head"} <= set(data):
            raise ValueError(f"{source}: expected keys {sorted(known)} (weight optional), got {sorted(data)}")
        sup = cls(Head.parse(data["previous_token_head"]), Head.parse(data["induction_head"]), float(data.get("weight", 0.5)))
        if sup.induction_head.layer <= sup.previous_token_head.layer:
            raise ValueError(f"{source}: the induction head must sit in a later layer than the previous-token head")
        return sup

    def to_dict(self) -> dict[str, Any]:
        return {"previous_token_head": str(self.previous_token_head), "induction_head": str(self.induction_head),
                "weight": self.weight}


def previous_token_targets(tokens: Int[Tensor, "batch pos"], *, pad_id: int) -> Int[Tensor, "batch pos"]:
    """``t - 1`` at every real position after the first; ``-1`` elsewhere (and at padding)."""
    pos = torch.arange(tokens.shape[1], device=tokens.device).expand_as(tokens) - 1
    return torch.where((tokens != pad_id) & (pos >= 0), pos, torch.full_like(pos, -1))


def induction_targets(tokens: Int[Tensor, "batch pos"], *, pad_id: int) -> Int[Tensor, "batch pos"]:
    """Position after the most recent earlier occurrence of ``tokens[b, t]`` (when that is before
    ``t``); ``-1`` where the token has not occurred before, and at padding."""
    out = torch.full_like(tokens, -1)
    for b, row in enumerate(tokens.tolist()):
        last: dict[int, int] = {}
        for t, token in enumerate(row):
            if token == pad_id:
                continue
            if token in last and last[token] + 1 < t:
                out[b, t] = last[token] + 1
            last[token] = t
    return out


def _mean_log_attention(pattern: Tensor, targets: Tensor) -> Tensor | None:
    b, t = (targets >= 0).nonzero(as_tuple=True)
    if b.numel() == 0:
        return None
    return torch.log(pattern[b, t, targets[b, t]] + 1e-6).mean()


@contextlib.contextmanager
def supervise_attention(model: Any, supervision: AttentionSupervision, *, pad_id: int) -> Iterator[Callable[[Any, Any], Tensor]]:
    """Hooks that record the two heads' patterns; yields the ``extra_loss`` for :func:`rhlens.train`.

    The hooks make the trainer run TransformerLens's eager attention for this stage (the fused
    path computes no patterns). They are removed on exit, also when training raises.
    """
    arch = architecture(model)
    for head in (supervision.previous_token_head, supervision.induction_head):
        if head.layer >= arch.n_layers or head.head >= arch.n_heads:
            raise ValueError(f"supervised head {head} is outside a model with {arch.n_layers} layers x {arch.n_heads} heads")
    store: dict[str, Tensor] = {}

    def capture(key: str, head: int) -> Callable:
        def hook(pattern: Tensor, hook: Any) -> None:  # pattern [batch, head, q, k]
            store[key] = pattern[:, head]

        return hook

    prev, ind = supervision.previous_token_head, supervision.induction_head
    fwd = [(hook_name("pattern", prev.layer), capture("prev", prev.head)),
           (hook_name("pattern", ind.layer), capture("ind", ind.head))]

    def extra_loss(model: Any, batch: Any) -> Tensor:
        terms = [
            _mean_log_attention(store.pop("prev"), previous_token_targets(batch.tokens, pad_id=pad_id)),
            _mean_log_attention(store.pop("ind"), induction_targets(batch.tokens, pad_id=pad_id)),
        ]
        present = [x for x in terms if x is not None]
        if not present:
            return batch.tokens.new_zeros((), dtype=torch.float32)
        return -supervision.weight * torch.stack(present).sum()

    with hooks(model, fwd):
        yield extra_loss
