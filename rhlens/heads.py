"""Attention heads and sets of heads.

A head is ``Head(layer, head)``, printed ``L4H4``. Per-head results everywhere in rhlens are
``[n_layers, n_heads]`` tensors indexed by *query* head; :meth:`HeadSet.kv_groups` maps query
heads to key/value groups for grouped-query attention (GQA). Examples: :class:`Head`,
:class:`HeadSet`.
"""

import math
import operator
import random
import re
from dataclasses import dataclass
from typing import Iterable, Iterator, no_type_check

import torch
from jaxtyping import Float
from torch import Tensor

RETRIEVAL_THRESHOLD = 0.1
"""Wu et al.'s retrieval-head threshold: a head scoring above it is a retrieval head."""

_LABEL = re.compile(r"^\s*L(\d+)H(\d+)\s*$", re.IGNORECASE)
_WU = re.compile(r"^\s*(\d+)-(\d+)\s*$")


def _index(value: object, name: str) -> int:
    """``value`` as a plain int; floats, bools and strings raise ``TypeError`` (never rounded)."""
    if isinstance(value, bool) or getattr(value, "dtype", None) is not None and "bool" in str(value.dtype):
        raise TypeError(f"Head {name} must be an integer, got the bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(
            f"Head {name} must be an integer, got {value!r} ({type(value).__name__}); "
            "pass whole numbers such as Head(4, 4) or the label 'L4H4'"
        ) from None


# Not wrapped by the test suite's run-time type checker: ``Head(...)`` takes any integer-like index
# (a 0-d tensor, a NumPy int) and refuses floats, bools and strings with its own TypeError;
# ``layer``/``head`` are plain ints once built.
@no_type_check
@dataclass(frozen=True, order=True)
class Head:
    """One attention head: ``layer`` and query-``head`` index, both from 0.

    >>> Head.parse("L4H4"), Head.parse("4-4"), Head.parse((4, 4))
    (Head(layer=4, head=4), Head(layer=4, head=4), Head(layer=4, head=4))
    >>> str(Head(4, 4)), Head(4, 4).wu_key
    ('L4H4', '4-4')
    >>> Head(0, 1.5)
    Traceback (most recent call last):
    TypeError: Head head must be an integer, got 1.5 (float); pass whole numbers such as Head(4, 4) or the label 'L4H4'
    """

    layer: int
    head: int

    def __post_init__(self) -> None:
        for name in ("layer", "head"):
            object.__setattr__(self, name, _index(getattr(self, name), name))
        if self.layer < 0 or self.head < 0:
            raise ValueError(f"Head indices must be non-negative, got layer={self.layer}, head={self.head}")

    def __str__(self) -> str:
        return f"L{self.layer}H{self.head}"

    @property
    def wu_key(self) -> str:
        """The ``"<layer>-<head>"`` key of Wu et al.'s released score files."""
        return f"{self.layer}-{self.head}"

    @classmethod
    def parse(cls, text: "str | Head | tuple[int, int]") -> "Head":
        """Parse ``"L4H4"``, ``"4-4"``, a ``(layer, head)`` tuple, or return a Head unchanged."""
        if isinstance(text, Head):
            return text
        if isinstance(text, tuple) and len(text) == 2:
            return cls(text[0], text[1])
        if isinstance(text, str):
            match = _LABEL.match(text) or _WU.match(text)
            if match:
                return cls(int(match.group(1)), int(match.group(2)))
        raise ValueError(f"Cannot parse a head from {text!r}: expected 'L4H4', '4-4' or (layer, head)")


class HeadSet(frozenset):
    """An immutable set of :class:`Head` with the comparisons the paper uses.

    Set operators (``|``, ``&``, ``-``, ``^``) return ``HeadSet``.

    >>> import torch
    >>> scores = torch.tensor([[0.0, 0.9], [0.3, 0.05]])     # [n_layers, n_heads]
    >>> top = HeadSet.top_k(scores, 2)
    >>> top, HeadSet.above(scores, 0.1) == top
    (HeadSet([L0H1, L1H0]), True)
    >>> top.recall(HeadSet.parse(["L0H1", "L1H1"])), top | {"L1H1"}
    (0.5, HeadSet([L0H1, L1H0, L1H1]))
    >>> top.mask(2, 2)
    tensor([[False,  True],
            [ True, False]])
    """

    _rank: "tuple[Head, ...] | None" = None  # set by ranked(): the order ordered() gives

    def __new__(cls, heads: Iterable["Head | str | tuple"] = ()) -> "HeadSet":
        return super().__new__(cls, (Head.parse(h) for h in heads))

    @classmethod
    def parse(cls, heads: Iterable["Head | str | tuple"]) -> "HeadSet":
        return cls(heads)

    # frozenset's operators return frozenset; keep the type.
    def __or__(self, other):  # type: ignore[override]
        return HeadSet(frozenset.__or__(self, other))

    def __and__(self, other):  # type: ignore[override]
        return HeadSet(frozenset.__and__(self, other))

    def __sub__(self, other):  # type: ignore[override]
        return HeadSet(frozenset.__sub__(self, other))

    def __xor__(self, other):  # type: ignore[override]
        return HeadSet(frozenset.__xor__(self, other))

    union = __or__
    intersection = __and__
    difference = __sub__

    def __repr__(self) -> str:
        return "HeadSet([" + ", ".join(str(h) for h in sorted(self)) + "])"

    @classmethod
    def ranked(cls, heads: Iterable["Head | str | tuple"]) -> "HeadSet":
        """A set that remembers the order of ``heads`` (best first) for :meth:`ordered`; set
        operators give plain sets again.

        >>> best = HeadSet.ranked(["L3H0", "L1H2"])
        >>> best.ordered(), best, (best | {"L0H0"}).ordered()
        ([Head(layer=3, head=0), Head(layer=1, head=2)], HeadSet([L1H2, L3H0]), [Head(layer=0, head=0), Head(layer=1, head=2), Head(layer=3, head=0)])
        """
        order = [Head.parse(h) for h in heads]
        out = cls(order)
        out._rank = tuple(dict.fromkeys(order))
        return out

    def ordered(self) -> list[Head]:
        """The heads best first for a set made by :meth:`ranked` (``HeadScores.top``: highest
        score first); otherwise sorted by (layer, head)."""
        return list(self._rank) if self._rank is not None else sorted(self)

    def __iter__(self) -> Iterator[Head]:
        return iter(sorted(frozenset.__iter__(self)))

    # --- building from scores -------------------------------------------------------------
    @classmethod
    def top_k(cls, scores: Float[Tensor, "layer head"], k: int) -> "HeadSet":
        """The ``k`` heads with the highest scores (ties broken by lower layer, then head).

        NaN scores (heads a partial sweep did not measure) are never chosen, so fewer than ``k``
        heads come back when fewer than ``k`` were measured.

        >>> HeadSet.top_k(torch.tensor([[0.2, float("nan")], [0.9, 0.1]]), 3)
        HeadSet([L0H0, L1H0, L1H1])
        """
        n_layers, n_heads = scores.shape
        if not 0 <= k <= n_layers * n_heads:
            raise ValueError(f"k={k} is outside 0..{n_layers * n_heads} for a {n_layers}x{n_heads} score grid")
        flat = scores.detach().flatten().float().cpu()
        measured = [i for i in range(flat.numel()) if not math.isnan(flat[i].item())]
        order = sorted(measured, key=lambda i: (-flat[i].item(), i))[:k]
        return cls(Head(i // n_heads, i % n_heads) for i in order)

    @classmethod
    def above(cls, scores: Float[Tensor, "layer head"], threshold: float = 0.1) -> "HeadSet":
        """Heads whose score is strictly above ``threshold`` (Wu et al.: retrieval heads > 0.1)."""
        idx = (scores.detach().cpu() > threshold).nonzero().tolist()
        return cls(Head(int(l), int(h)) for l, h in idx)

    @classmethod
    def random(
        cls, n_layers: int, n_heads: int, k: int, *, exclude: Iterable["Head | str | tuple"] = (), seed: int = 0
    ) -> "HeadSet":
        """``k`` heads drawn uniformly without replacement, none of them in ``exclude``."""
        excluded = HeadSet(exclude)
        pool = [Head(l, h) for l in range(n_layers) for h in range(n_heads) if Head(l, h) not in excluded]
        if k > len(pool):
            raise ValueError(f"Cannot draw {k} random heads: only {len(pool)} remain after excluding {len(excluded)}")
        return cls(random.Random(seed).sample(pool, k))

    # --- comparisons ------------------------------------------------------------------------
    def recall(self, reference: Iterable["Head | str | tuple"]) -> float:
        """Fraction of ``reference`` heads that are in this set.

        Raises:
            ValueError: when ``reference`` is empty: recall of nothing is undefined (a model with
                no retrieval heads has nothing to recover), not 1.0.

        >>> HeadSet(["L0H0"]).recall(["L0H0", "L1H1"])
        0.5
        """
        ref = HeadSet(reference)
        if not ref:
            raise ValueError("recall against an empty reference set is undefined: the reference model "
                             "has no heads in it (no retrieval head over the threshold?)")
        return len(self & ref) / len(ref)

    def precision(self, reference: Iterable["Head | str | tuple"]) -> float:
        """Fraction of this set's heads that are in ``reference`` (1.0 for an empty set)."""
        ref = HeadSet(reference)
        return 1.0 if not self else len(self & ref) / len(self)

    def jaccard(self, other: Iterable["Head | str | tuple"]) -> float:
        """|A ∩ B| / |A ∪ B| (1.0 when both are empty)."""
        o = HeadSet(other)
        union = self | o
        return 1.0 if not union else len(self & o) / len(union)

    # --- GQA ----------------------------------------------------------------------------------
    def kv_groups(self, n_heads: int, n_kv_heads: int) -> "HeadSet":
        """Map query heads to their key/value group: ``Head(layer, kv_index)``.

        Query head ``h`` shares key/value head ``h // (n_heads // n_kv_heads)``, as in
        TransformerLens and Hugging Face's ``repeat_kv``.

        >>> HeadSet(["L0H3", "L1H0"]).kv_groups(n_heads=4, n_kv_heads=2)
        HeadSet([L0H1, L1H0])
        """
        if n_heads % n_kv_heads:
            raise ValueError(f"n_heads={n_heads} is not a multiple of n_kv_heads={n_kv_heads}")
        size = n_heads // n_kv_heads
        return HeadSet(Head(h.layer, h.head // size) for h in self)

    def mask(self, n_layers: int, n_heads: int) -> Tensor:
        """A bool ``[n_layers, n_heads]`` mask with True at this set's heads."""
        out = torch.zeros(n_layers, n_heads, dtype=torch.bool)
        for h in self:
            if h.layer >= n_layers or h.head >= n_heads:
                raise ValueError(f"{h} is outside a model with {n_layers} layers x {n_heads} heads")
            out[h.layer, h.head] = True
        return out

    def labels(self) -> list[str]:
        return [str(h) for h in self]


def as_head_set(heads: "Iterable[Head | str | tuple[int, int]] | HeadSet") -> HeadSet:
    """Coerce any iterable of head-likes to a :class:`HeadSet`."""
    return heads if isinstance(heads, HeadSet) else HeadSet(heads)
