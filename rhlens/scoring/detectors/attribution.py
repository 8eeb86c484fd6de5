"""The causal yardstick: each head's first-order knockout effect on the answer's log-prob.

:func:`knockout_attribution` is :func:`rhlens.attribution_sweep` with zeros as the source
(``source=None``): with ``z`` the head's ``hook_z`` and ``M`` the teacher-forced log-prob of the
gold answer (EOS excluded), the estimate of zeroing the head at the answer-predicting rows (the
rows :func:`rhlens.knockout`'s default ``scope="decode"`` knocks out under teacher forcing) is
``sum over those rows and d_head of (0 - z) * dM/dz``. The detector's score is its negation, the
estimated *drop* of ``log P(answer)``: high for a head the answer needs. One forward with a graph
and one backward per batch, every head at once.
"""

from typing import Any, Sequence

import torch
from torch import Tensor

from rhlens.adapter import Model, architecture
from rhlens.encoding import EncodedExample
from rhlens.interventions.attribution import attribution_sweep
from rhlens.scoring.results import HeadScores


def answer_rows(enc: EncodedExample, n_positions: int) -> Tensor:
    """Bool ``[n_positions]``: the rows that predict an answer token (the last prompt row on)."""
    mask = torch.zeros(n_positions, dtype=torch.bool)
    mask[enc.prompt_len - 1 : len(enc.tokens) - 1] = True
    return mask


def knockout_attribution(
    model: Model, examples: Sequence[Any], *, batch_size: int = 4, progress: bool = True, **_: Any
) -> HeadScores:
    """Every head's estimated drop of ``log P(answer)`` when it is zeroed at the answer rows.

    Returns:
        :class:`HeadScores` whose ``per_example`` ``[n_examples, n_layers, n_heads]`` (query heads)
        is the drop on each example (negative: zeroing the head would help); every example counts.

    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> from rhlens.tasks import Example
    >>> ex = Example("Ann lives in Rome .\\nAnswer:", "Rome", ((13, 17),), "niah", "real")
    >>> model = tiny_llama(tokenizer=word_level_tokenizer([ex.prompt + ex.completion]), seed=0)
    >>> knockout_attribution(model, [ex], progress=False).per_example.shape
    torch.Size([1, 2, 4])
    """
    sweep = attribution_sweep(None, model, examples, positions=answer_rows, batch_size=batch_size, progress=progress)
    drop = (sweep.baseline[None, None, :] - sweep.patched).permute(2, 0, 1).contiguous()  # [example, layer, head]
    return HeadScores(
        per_example=drop,
        n_kv_heads=architecture(model).n_kv_heads, meta={"method": "attribution", "metric": sweep.metric},
    )
