"""What both fused attention paths share: the hooks that force the eager path, and blocked edges.

:mod:`rhlens.adapter.fused` (HookedTransformer attention) and :mod:`rhlens.adapter.bridge_fused`
(TransformerBridge attention) both run SDPA in place of the eager attention. Both fall back to the
eager forward when a hook is on a point the kernel never computes (:func:`needs_eager`), and both
remove the edges registered by :func:`rhlens.adapter.fused.blocked_edges` from SDPA's mask
(:func:`with_blocked_edges`), refusing a row left with no key as the eager path does.

>>> import torch
>>> attn = torch.nn.Module()  # an attention module with no blocked edges
>>> with_blocked_edges(attn, None, n_rows=1, n_heads=2, q_len=3, k_len=3, device=torch.device("cpu")) is None
True
"""

from typing import Any, Callable

import torch
from jaxtyping import Bool
from torch import Tensor

from rhlens.adapter.causal_sdpa import causal_mask

# Hook points whose values the fused paths never compute (``hook_pattern`` is computed beside it
# when hooked: :mod:`rhlens.adapter.observe`).
SKIPPED_HOOKS = ("hook_attn_scores", "hook_result")
# On an attention module: the (layer, name, edge function) entries of ``blocked_edges``, and how
# many of its ``hook_attn_scores`` hooks are theirs (those alone do not force the eager path).
EDGES_ATTR = "_rhlens_blocked_edges"
OWN_SCORE_HOOKS_ATTR = "_rhlens_own_score_hooks"

EdgeFn = Callable[[int, int, int, torch.device], "Bool[Tensor, 'batch head_or_1 q k'] | None"]
"""``fn(batch, q_len, k_len, device)``: True at the query -> key edges to block, ``[batch, head or 1,
q_len, k_len]`` (query row ``j`` is column ``k_len - q_len + j``), or ``None`` when none."""


def has_hooks(module: torch.nn.Module) -> bool:
    """Whether ``module`` has any forward, forward-pre or backward hook attached."""
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def _n_hooks(module: torch.nn.Module) -> int:
    return len(module._forward_hooks) + len(module._forward_pre_hooks) + len(module._backward_hooks)


def needs_eager(attn: Any) -> bool:
    """Whether a hook on ``attn`` needs what the fused path skips (:data:`SKIPPED_HOOKS`), other
    than the score hooks of ``blocked_edges`` itself."""
    for name in SKIPPED_HOOKS:
        point = getattr(attn, name, None)
        own = getattr(attn, OWN_SCORE_HOOKS_ATTR, 0) if name == "hook_attn_scores" else 0
        if point is not None and _n_hooks(point) > own:
            return True
    return False


def blocked(attn: Any, n_rows: int, q_len: int, k_len: int, device: torch.device) -> Tensor | None:
    """The union of the edges registered on ``attn`` for this call, or ``None`` when none is blocked."""
    out = None
    for _, _, fn in getattr(attn, EDGES_ATTR, ()):
        got = fn(n_rows, q_len, k_len, device)
        if got is not None:
            out = got if out is None else out | got
    if out is None or not bool(out.any()):
        return None
    return out


def check_alive(attn: Any, allowed: Bool[Tensor, "batch h q k"], block: Bool[Tensor, "#batch #h q k"]) -> None:
    """Raise when blocking leaves a query row that could attend somewhere with no key."""
    dead = allowed.any(dim=-1) & ~(allowed & ~block).any(dim=-1)  # [batch, head, q]
    if bool(dead.any()):
        bb, hh, qq = dead.nonzero()[0].tolist()
        layer, name, _ = getattr(attn, EDGES_ATTR)[0]
        k_len, q_len = allowed.shape[-1], allowed.shape[-2]
        raise ValueError(
            f"{name} blocks every key of query column {k_len - q_len + qq} (batch row {bb}) in layer {layer} "
            f"head {hh}: nothing left to attend to. Leave at least one key unblocked."
        )


def with_blocked_edges(
    attn: Any, mask: "Bool[Tensor, '#batch #head q k'] | None", *, n_rows: int, n_heads: int, q_len: int, k_len: int,
    device: torch.device,
) -> "Bool[Tensor, '#batch #head q k'] | None":
    """SDPA's bool mask (True = attend; ``None``: causal only) less the edges blocked on ``attn``."""
    block = blocked(attn, n_rows, q_len, k_len, device)
    if block is None:
        return mask
    if mask is None:
        mask = causal_mask(q_len, k_len, device)
    check_alive(attn, mask.expand(n_rows, n_heads, q_len, k_len), block)
    return mask & ~block
