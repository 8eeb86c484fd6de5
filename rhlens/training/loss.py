"""Answer-only loss: cross-entropy on the answer tokens, each predicted from the position before.

Only the final residual at answer positions goes through the final norm and the unembedding, so
the ``[batch, pos, d_vocab]`` logits tensor of a long context is never built (with a 128k
vocabulary and 32k tokens it would take 16 GB). Models that soft-cap their logits go through the
full forward instead.

>>> import torch
>>> from rhlens.training.data import collate
>>> from rhlens.encoding import EncodedExample
>>> from rhlens.models import tiny_llama
>>> model = tiny_llama()
>>> batch = collate([EncodedExample([1, 5, 6, 7], 3, (), (3, 4))], pad_id=0)
>>> answer_token_losses(model, batch).shape
torch.Size([1])
"""

from typing import Any

import torch
import torch.nn.functional as F
from jaxtyping import Float
from torch import Tensor

from rhlens.adapter.core import Model
from rhlens.adapter.weights import final_residual, logits_from_residual
from rhlens.training.data import IGNORE_INDEX, TrainBatch


def _call_kwargs(model: Model, batch: TrainBatch) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"attention_mask": batch.attention_mask, "prepend_bos": False}
    if batch.attention_mask is None and getattr(model, "tokenizer", None) is not None:
        # Right padding needs no mask; say so, or TransformerLens infers one from pad ids.
        kwargs["padding_side"] = "right"
    return kwargs


def answer_token_losses(model: Model, batch: TrainBatch) -> Float[Tensor, "n_answer"]:
    """Per-token cross-entropy (float32) at every answer token of ``batch``, row-major order."""
    targets = batch.targets  # [batch, pos - 1]
    select = targets != IGNORE_INDEX
    cfg = model.cfg
    soft_cap = getattr(cfg, "output_logits_soft_cap", -1.0) or -1.0
    if soft_cap > 0:
        logits = model(batch.tokens, return_type="logits", **_call_kwargs(model, batch))[:, :-1][select]
    else:
        resid = final_residual(model, batch.tokens, **_call_kwargs(model, batch))  # [batch, pos, d_model]
        picked = resid[:, :-1][select][None]  # [1, n_answer, d_model]
        logits = logits_from_residual(model, picked)[0]  # [n_answer, d_vocab]
    return F.cross_entropy(logits.float(), targets[select], reduction="none")


def answer_loss_sum(model: Model, batch: TrainBatch) -> Float[Tensor, ""]:
    """Sum of :func:`answer_token_losses` (divide by the answer-token count for the mean)."""
    return answer_token_losses(model, batch).sum()


@torch.no_grad()
def heldout_answer_loss(model: Model, batches: list[TrainBatch]) -> float:
    """Mean answer-token loss over ``batches`` (call in eval mode)."""
    total, count = 0.0, 0
    for batch in batches:
        losses = answer_token_losses(model, batch)
        total += float(losses.sum())
        count += losses.numel()
    return total / max(count, 1)
