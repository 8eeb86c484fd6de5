"""Attention knockout (Geva et al. 2023): block chosen query -> key edges.

Inside :func:`block_attention`, every edge from a ``from_positions`` query to a ``to_positions``
key carries exactly 0 attention weight and each row is renormalised over its remaining keys. On
the fused (SDPA) path the edges are removed from the attention mask, so a blocked run keeps the
kernels of the plain model; on the eager path (a hooked pattern, a TransformerBridge) the
pre-softmax score (``hook_attn_scores``) is set to the dtype's most negative finite value (not
``-inf``: a row blocked to the last key would give NaN in Hugging Face's eager softmax). See
:func:`rhlens.adapter.blocked_edges`. Blocking every key a query can see is an error, not a
silent uniform row, and so is a position that no sequence run inside the block reaches (checked
when the block ends; a position past the model's context is refused at once).

Positions are *absolute columns of the sequence the model runs on*:

- Padding: with left padding, token ``i`` of row ``b`` sits at column ``offsets[b] + i``. Pass
  ``offsets=PaddedBatch.offsets`` to give positions in each example's own token coordinates.
- KV cache (chunked prefill, decoding): a forward over columns ``past .. past + q_len`` sees
  scores ``[batch, head, q_len, past + q_len]``; its query rows are columns ``past + j``, so edges
  are blocked in every chunk and at every decoding step alike. Blocking an edge *into* a cached
  key still works; blocking edges *from* an earlier query after it was cached cannot change the
  cache retroactively (enter the context before the prefill).

Position specs: an ``int``, a list of ints (broadcast over the batch), a list of lists (one per
batch row), or a bool tensor ``[pos]`` / ``[batch, pos]``.

Example: :func:`block_attention`.
"""

import contextlib
import warnings
from typing import Any, Iterable, Iterator, Sequence, Union

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import Model, architecture, blocked_edges
from rhlens.heads import Head
from rhlens.interventions.head_sets import heads_by_layer

PositionSpec = Union[int, Sequence[int], Sequence[Sequence[int]], Tensor]


class _Positions:
    """A position spec normalised to per-row lists of column indices (or one broadcast list)."""

    def __init__(self, spec: PositionSpec, name: str):
        self.name = name
        if isinstance(spec, Tensor):
            if spec.dtype == torch.bool:
                if spec.ndim == 1:
                    rows = [spec.nonzero()[:, 0].tolist()]
                    self.broadcast = True
                elif spec.ndim == 2:
                    rows = [r.nonzero()[:, 0].tolist() for r in spec]
                    self.broadcast = False
                else:
                    raise ValueError(f"{name}: a bool mask must be [pos] or [batch, pos], got shape {tuple(spec.shape)}")
            else:
                spec = spec.tolist()
        if not isinstance(spec, Tensor):
            if isinstance(spec, int):
                rows, self.broadcast = [[spec]], True
            elif all(isinstance(p, int) for p in spec):
                rows, self.broadcast = [list(spec)], True
            elif all(isinstance(p, (list, tuple)) for p in spec):
                rows, self.broadcast = [[int(x) for x in r] for r in spec], False
            else:
                raise TypeError(
                    f"{name} must be an int, a list of ints, a list of lists (one per batch row) or a bool tensor; got {spec!r}"
                )
        for r in rows:
            for p in r:
                if p < 0:
                    raise ValueError(f"{name} has negative position {p}; positions are absolute column indices from 0")
        if not any(rows):
            warnings.warn(f"block_attention: {name} names no position, so nothing is blocked", stacklevel=3)
        self.rows = rows

    def last_column(self, offsets: Tensor | None) -> int:
        """The largest column any row names (``-1`` when none)."""
        if offsets is None or self.broadcast:
            shift = int(offsets.max()) if offsets is not None and len(offsets) else 0
            return max((p + shift for r in self.rows for p in r), default=-1)
        return max((p + int(offsets[b]) for b, r in enumerate(self.rows) for p in r), default=-1)

    def mask(self, n_rows: int, length: int, offsets: Tensor | None, device: Any) -> Bool[Tensor, "batch length"]:
        if not self.broadcast and len(self.rows) != n_rows:
            raise ValueError(f"{self.name} gives positions for {len(self.rows)} rows but the batch has {n_rows}")
        out = torch.zeros(n_rows, length, dtype=torch.bool)
        for b in range(n_rows):
            row = self.rows[0] if self.broadcast else self.rows[b]
            off = int(offsets[b]) if offsets is not None else 0
            cols = [p + off for p in row if p + off < length]
            if cols:
                out[b, cols] = True
        return out.to(device)


def _targets(
    model: Model, heads: "Iterable[Head | str | tuple[int, int]] | None", layers: Iterable[int] | None
) -> dict[int, list[int] | None]:
    """``{layer: head indices}`` (``None``: every head of the layer)."""
    if heads is not None and layers is not None:
        raise ValueError("block_attention takes heads= or layers=, not both")
    n_layers = architecture(model).n_layers
    if heads is not None:
        targets = dict(heads_by_layer(model, heads, what="blocked heads"))
        if not targets:
            warnings.warn("block_attention: heads= is empty, so nothing is blocked (layers=, or neither: every layer)", stacklevel=4)
        return targets
    chosen = range(n_layers) if layers is None else sorted(set(int(l) for l in layers))
    bad = [l for l in chosen if not 0 <= l < n_layers]
    if bad:
        raise ValueError(f"layers {bad} outside a model with {n_layers} layers (0..{n_layers - 1})")
    return {l: None for l in chosen}


@contextlib.contextmanager
def block_attention(
    model: Model,
    from_positions: PositionSpec,
    to_positions: PositionSpec,
    *,
    heads: "Iterable[Head | str | tuple[int, int]] | None" = None,
    layers: Iterable[int] | None = None,
    offsets: Int[Tensor, "batch"] | None = None,
) -> Iterator[Any]:
    """Block attention edges from ``from_positions`` queries to ``to_positions`` keys.

    Args:
        model: a HookedTransformer or TransformerBridge.
        from_positions, to_positions: query and key columns (see the module docstring for the
            accepted forms, padding and the KV cache).
        heads: block only in these query heads; or
        layers: block in every head of these layers (default: every layer).
        offsets: ``[batch]`` added to each row's positions (left padding: ``PaddedBatch.offsets``).

    Yields the model; hooks are removed on exit, also when the body raises.

    Raises (from inside the forward): ``ValueError`` when a query row that could attend somewhere
    has every one of its keys blocked.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.adapter import forward, hook_name, hooks
    >>> tok = word_level_tokenizer(["a b c d"])
    >>> model = tiny_llama(tokenizer=tok)
    >>> tokens = model.to_tokens("a b c d")                     # [1, 5] with BOS
    >>> seen = {}
    >>> with block_attention(model, from_positions=[3, 4], to_positions=[1], layers=[0]):
    ...     with hooks(model, [(hook_name("pattern", 0), lambda p, hook: seen.setdefault("p", p))]):
    ...         _ = forward(model, tokens)
    >>> seen["p"][0, :, 3:, 1].abs().max().item(), seen["p"][0, :, 2, 1].min().item() > 0
    (0.0, True)
    """
    src = _Positions(from_positions, "from_positions")
    dst = _Positions(to_positions, "to_positions")
    targets = _targets(model, heads, layers)
    n_ctx, n_heads = architecture(model).n_ctx, architecture(model).n_heads
    for spec in (src, dst):
        last = spec.last_column(offsets)
        if last >= n_ctx:
            raise ValueError(
                f"block_attention: {spec.name} reaches column {last}, past the model's context of {n_ctx} columns"
            )
    memo: dict[tuple, Tensor] = {}
    longest = {"k": 0}

    def edges(n_rows: int, q_len: int, k_len: int, device: Any) -> Bool[Tensor, "batch 1 q k"]:
        longest["k"] = max(longest["k"], k_len)
        key = (n_rows, q_len, k_len, str(device))
        if key not in memo:
            q_mask = src.mask(n_rows, k_len, offsets, device)[:, k_len - q_len :]  # [batch, q]
            k_mask = dst.mask(n_rows, k_len, offsets, device)  # [batch, k]
            memo.clear()
            memo[key] = (q_mask[:, :, None] & k_mask[:, None, :])[:, None]
        return memo[key]

    def layer_edges(idx: list[int] | None):
        if idx is None:
            return edges
        head_mask = torch.zeros(1, n_heads, 1, 1, dtype=torch.bool)
        head_mask[0, idx] = True

        def fn(n_rows: int, q_len: int, k_len: int, device: Any) -> Bool[Tensor, "batch head q k"]:
            return edges(n_rows, q_len, k_len, device) & head_mask.to(device)

        return fn

    with blocked_edges(model, {l: layer_edges(idx) for l, idx in targets.items()}, name="block_attention"):
        yield model
    if longest["k"]:
        for spec in (src, dst):
            last = spec.last_column(offsets)
            if last >= longest["k"]:
                raise ValueError(
                    f"block_attention: {spec.name} reaches column {last}, but the longest sequence run inside the "
                    f"block had {longest['k']} columns, so nothing was blocked there. Positions are absolute "
                    "columns from 0 (with offsets=, each row's own token positions shifted by its padding)."
                )
