"""Training data: encode examples, fix the data order, cut global batches, pad micro-batches.

The data order is a pure function of ``(seed, shuffle, step)``: epoch ``e`` visits the examples
in ``randperm(n, generator=seed + e)`` order and the stream of epochs is cut into global batches
of ``batch_size``. A resumed run therefore needs only the step to continue where it stopped.

>>> from rhlens.encoding import EncodedExample
>>> encoded = [EncodedExample(tokens=[1, 5, 6, 7], prompt_len=3, needle_spans=(), completion_span=(3, 4)),
...            EncodedExample(tokens=[1, 8, 9], prompt_len=2, needle_spans=(), completion_span=(2, 3))]
>>> batch = collate(encoded, pad_id=0, padding_side="right")
>>> batch.tokens.tolist()
[[1, 5, 6, 7], [1, 8, 9, 0]]
>>> batch.targets.tolist()       # targets[b, t] is the answer token predicted at position t
[[-100, -100, 7], [-100, 9, -100]]
>>> batch_indices(0, batch_size=3, n_examples=2, seed=0, shuffle=False)
[0, 1, 0]
"""

import functools
from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from jaxtyping import Int
from torch import Tensor

from rhlens.encoding import EncodedExample, check_examples, check_fits, encode_example

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TrainBatch:
    """A padded micro-batch.

    Attributes:
        tokens: ``[batch, pos]`` token ids.
        attention_mask: ``[batch, pos]`` 1 at real tokens, 0 at padding; ``None`` for right
            padding, where the causal mask alone keeps every real token from seeing padding.
        targets: ``[batch, pos - 1]``; ``targets[b, t]`` is the answer token the model must
            predict from position ``t`` (i.e. ``tokens[b, t + 1]``), ``-100`` elsewhere.
        n_tokens: real (non-padding) tokens in the batch.
    """

    tokens: Int[Tensor, "batch pos"]
    attention_mask: Int[Tensor, "batch pos"] | None
    targets: Int[Tensor, "batch pos_minus_1"]
    n_tokens: int

    @property
    def n_answer_tokens(self) -> int:
        return int((self.targets != IGNORE_INDEX).sum())

    def to(self, device: Any) -> "TrainBatch":
        mask = None if self.attention_mask is None else self.attention_mask.to(device, non_blocking=True)
        return replace(
            self,
            tokens=self.tokens.to(device, non_blocking=True),
            attention_mask=mask,
            targets=self.targets.to(device, non_blocking=True),
        )


def truncate_left(enc: EncodedExample, n_ctx: int) -> EncodedExample:
    """Drop tokens from the start of ``enc`` so it has at most ``n_ctx`` tokens.

    Needle and answer spans are shifted (and dropped when cut off). Raises ``ValueError`` when the answer
    itself does not fit.
    """
    cut = len(enc.tokens) - n_ctx
    if cut <= 0:
        return enc
    a0, a1 = enc.completion_span
    if a1 - a0 > n_ctx - 1:
        raise ValueError(
            f"example {enc.index}: its answer has {a1 - a0} tokens, more than the context of {n_ctx} "
            "leaves after one prompt token; truncation cannot fix this"
        )
    needles = tuple((s - cut, e - cut) for s, e in enc.needle_spans if s - cut >= 0)
    answers = tuple((s - cut, e - cut) for s, e in enc.answer_spans if s - cut >= 0)
    return replace(
        enc,
        tokens=enc.tokens[cut:],
        prompt_len=enc.prompt_len - cut,
        needle_spans=needles,
        answer_spans=answers,
        completion_span=(a0 - cut, a1 - cut),
        meta={**enc.meta, "truncated_tokens": cut},
    )


def prepare_examples(
    examples: Sequence[Any],
    *,
    tokenizer: Any,
    n_ctx: int,
    truncation: str | None = None,
    prepend_bos: bool = True,
    what: str = "training example",
) -> list[EncodedExample]:
    """Encode ``examples`` (or take :class:`EncodedExample` as is) and fit them to ``n_ctx``.

    Raises:
        ValueError: naming the example index and both lengths when an example is longer than
            ``n_ctx`` and ``truncation`` is ``None``; when an example has no answer tokens; or
            when an :class:`rhlens.tasks.Example` fails ``validate()`` (empty answer, span past
            the prompt ...).
        TypeError: naming the index when an example is neither an ``Example`` nor an
            :class:`EncodedExample` (a ``dict``, say).
    """
    if len(examples) == 0:
        raise ValueError(f"no {what}s given")
    texts = [ex for ex in examples if not isinstance(ex, EncodedExample)]
    if texts:  # Example.validate(): an empty answer or a span past the prompt would train silently
        check_examples(texts, what=f"{what}s")
    encoded = []
    for i, ex in enumerate(examples):
        if isinstance(ex, EncodedExample):
            enc = replace(ex, index=i)
        else:
            if tokenizer is None:
                raise ValueError("text examples need a tokenizer: attach one with model.set_tokenizer(tok)")
            enc = encode_example(tokenizer, ex, prepend_bos=prepend_bos, index=i)
        if enc.completion_span[1] <= enc.completion_span[0] or enc.completion_span[0] < 1:
            raise ValueError(f"{what} {i} has no answer tokens after a prompt token (completion_span={enc.completion_span})")
        if truncation == "left":
            enc = truncate_left(enc, n_ctx)
        encoded.append(enc)
    check_fits(encoded, n_ctx, what=what)
    return encoded


def torch_seed(value: int) -> int:
    """``value`` as a seed torch takes (``[0, 2**64)``), by torch's own rule for negatives (a seed of
    ``-1`` is ``2**64 - 1``), so any Python int seeds (``2**63 - 1`` and beyond) and every seed
    torch took before seeds exactly as it did.

    >>> torch_seed(3), torch_seed(-1) == 2**64 - 1, torch_seed((2**63 - 1) * 1_000_003) < 2**64
    (3, True, True)
    """
    return int(value) % 2**64


@functools.lru_cache(maxsize=4)
def epoch_order(n_examples: int, epoch: int, *, seed: int, shuffle: bool) -> tuple[int, ...]:
    """The example indices of ``epoch`` in visiting order (cached: consecutive steps share it)."""
    if not shuffle:
        return tuple(range(n_examples))
    gen = torch.Generator().manual_seed(torch_seed(int(seed) * 1_000_003 + int(epoch)))
    return tuple(torch.randperm(n_examples, generator=gen).tolist())


def batch_indices(step: int, *, batch_size: int, n_examples: int, seed: int, shuffle: bool) -> list[int]:
    """Example indices of global batch ``step`` (0-based) in the endless stream of epochs."""
    start = step * batch_size
    out: list[int] = []
    while len(out) < batch_size:
        pos = start + len(out)
        epoch, offset = divmod(pos, n_examples)
        order = epoch_order(n_examples, epoch, seed=seed, shuffle=shuffle)
        out.extend(order[offset : offset + batch_size - len(out)])
    return out


def shard(indices: Sequence[int], *, rank: int, world_size: int, grad_accum_steps: int) -> list[list[int]]:
    """This process's micro-batches of a global batch.

    The global batch is cut into ``world_size * grad_accum_steps`` equal contiguous pieces; process
    ``rank`` takes pieces ``rank * grad_accum_steps ...`` in order.
    """
    pieces = world_size * grad_accum_steps
    size = len(indices) // pieces
    if size * pieces != len(indices):
        raise ValueError(f"a batch of {len(indices)} does not split into {pieces} equal micro-batches")
    first = rank * grad_accum_steps
    return [list(indices[(first + j) * size : (first + j + 1) * size]) for j in range(grad_accum_steps)]


def collate(encoded: Sequence[EncodedExample], *, pad_id: int, padding_side: str = "right") -> TrainBatch:
    """Pad ``encoded`` into a :class:`TrainBatch` with answer-only targets."""
    if not encoded:
        raise ValueError("collate needs at least one example")
    width = max(len(e.tokens) for e in encoded)
    n = len(encoded)
    tokens = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    targets = torch.full((n, width - 1), IGNORE_INDEX, dtype=torch.long)
    for b, enc in enumerate(encoded):
        length = len(enc.tokens)
        off = width - length if padding_side == "left" else 0
        row = torch.tensor(enc.tokens, dtype=torch.long)
        tokens[b, off : off + length] = row
        mask[b, off : off + length] = 1
        a0, a1 = enc.completion_span
        # token at column off + t is predicted from column off + t - 1
        targets[b, off + a0 - 1 : off + a1 - 1] = row[a0:a1]
    attention_mask = mask if padding_side == "left" else None
    return TrainBatch(tokens=tokens, attention_mask=attention_mask, targets=targets, n_tokens=int(mask.sum()))


def answer_token_count(encoded: Sequence[EncodedExample], indices: Sequence[int]) -> int:
    """Answer tokens in the examples at ``indices`` (the loss normaliser of a global batch)."""
    return sum(encoded[i].completion_span[1] - encoded[i].completion_span[0] for i in indices)
