"""``extend_context``: raise a rotary model's context length and RoPE base before fine-tuning.

The paper fine-tunes short-context models at a longer context after raising RoPE's theta. This
sets ``cfg.n_ctx`` (and ``cfg.rotary_base``) and recomputes every attention layer's rotary
sin/cos tables in place. With the base unchanged, positions below the old ``n_ctx`` keep exactly
their old rotations, so logits there do not change.

Example: :func:`extend_context`.
"""

from rhlens.adapter.core import Model
from rhlens.adapter.rotary import set_context


def extend_context(model: Model, n_ctx: int, rotary_base: float | None = None) -> None:
    """Set the model's context length to ``n_ctx`` and, if given, its RoPE base; in place.

    Args:
        model: a model with rotary positions (learned-position models can only shrink their
            context); on a TransformerBridge the Hugging Face config and rotary frequencies change.
        n_ctx: the new context length (larger or smaller than the current one).
        rotary_base: the new RoPE base (theta); ``None`` keeps the current one.

    Raises:
        UnsupportedModelError: learned absolute positions asked to grow, or dynamic-NTK rotary
            models.

    >>> import rhlens, torch
    >>> model = rhlens.tiny_llama(n_ctx=64)
    >>> tokens = model.to_tokens("The sky is blue.")
    >>> before = model(tokens)
    >>> extend_context(model, 256)             # same RoPE base: positions below 64 keep their logits
    >>> model.cfg.n_ctx, torch.equal(before, model(tokens))
    (256, True)
    >>> extend_context(model, 512, rotary_base=40_000)
    >>> model.cfg.n_ctx, model.cfg.rotary_base
    (512, 40000)
    """
    set_context(model, n_ctx, rotary_base=rotary_base)
