"""Attention softmax of a ``TransformerBridge`` at the scores' own precision.

TransformerLens 4's attention bridges compute the softmax in float32 whatever the model's dtype. A
float64 model then loses its precision there, and worse: Hugging Face masks with the dtype's
minimum (``-1.8e308`` in float64), which is ``-inf`` in float32, so a query that sees no key (the
leading pads of a left-padded row) softmaxes to NaN, and the NaN spreads to every real position of
the next layer (``0 * NaN``). :func:`keep_softmax_precision` makes each attention module of one
bridge compute its softmax in the wider of float32 and the scores' dtype (float32, bfloat16 and
float16 models are unchanged; no global patch).

>>> import torch
>>> from rhlens.models import tiny_llama
>>> model = tiny_llama(n_layers=2, dtype=torch.float64)  # a bridge on TransformerLens 4
>>> tokens, mask = torch.tensor([[0, 0, 5, 6], [1, 2, 3, 4]]), torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
>>> bool(model(tokens, attention_mask=mask).isfinite().all())
True
"""

import types
from typing import Any

import torch
from torch import Tensor

_FIXED = "_rhlens_softmax_precision"


def keep_softmax_precision(bridge: Any) -> Any:
    """Make ``bridge``'s attention modules softmax at their scores' precision (idempotent); returns it."""
    if getattr(bridge, _FIXED, False):
        return bridge
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    def _masked_softmax(self: Any, attn_scores: Tensor, dtype: torch.dtype | None = None) -> Tensor:
        if dtype is not None:
            dtype = torch.promote_types(dtype, attn_scores.dtype)
        return type(self)._masked_softmax(self, attn_scores, dtype=dtype)

    for module in bridge.modules():
        if isinstance(module, AttentionBridge) and hasattr(type(module), "_masked_softmax"):
            module._masked_softmax = types.MethodType(_masked_softmax, module)
    object.__setattr__(bridge, _FIXED, True)
    return bridge
