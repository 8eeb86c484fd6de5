"""Batched greedy decoding with chunked prefill through a key/value cache.

:func:`greedy_decode` is the public entry to the decoding loop of :mod:`rhlens.engine`, the one
every rhlens analyzer shares (evaluation, Wu et al.'s retrieval scores, knockout and patching).
Prompts are left-padded; all but the last prompt token are fed in chunks of ``chunk_size`` tokens
through the model's key/value cache (attention memory ``O(chunk x context)`` per layer), then one
token per step, step 0 being the last prompt token (as Wu et al.'s loop). Hooks the caller
attached stay active for every forward; ``on_step`` is told which token each forward produced,
so a hook that recorded the last query's attention can be matched with the token it led to.
Attention runs through the fused (SDPA) path where the model supports it; a layer whose pattern
or scores is hooked runs TransformerLens's eager attention, so hooks see exactly what they expect.

Example: :func:`greedy_decode`.
"""

from typing import Any, Sequence

from jaxtyping import Int
from torch import Tensor

from rhlens.adapter import Model, architecture, forward, new_kv_cache, tokenizer_of
from rhlens.encoding import check_fits_context
from rhlens.engine import Generation, StepCallback, chunk_bounds, greedy_tokens
from rhlens.stopping import default_stop_ids

__all__ = ["Generation", "StepCallback", "chunked_forward", "default_stop_ids", "greedy_decode"]


def chunked_forward(
    model: Model,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    *,
    chunk_size: int | None = None,
    cache: Any = None,
) -> tuple[Tensor, Any]:
    """Run ``tokens`` through ``model`` in chunks, as bare forwards (the caller's mode and kernels,
    no engine step); return the last position's logits ``[batch, d_vocab]`` and the filled cache."""
    if cache is None:
        cache = new_kv_cache(model, tokens.shape[0])
    logits = None
    for start, end in chunk_bounds(0, tokens.shape[1], chunk_size):
        logits = forward(model, tokens[:, start:end], attention_mask=attention_mask[:, start:end], past_kv_cache=cache)
    assert logits is not None
    return logits[:, -1], cache


def greedy_decode(
    model: Model,
    prompts: Sequence[Sequence[int]],
    *,
    max_new_tokens: int = 50,
    stop_ids: set[int] | None = None,
    chunk_size: int | None = 512,
    on_step: StepCallback | None = None,
) -> Generation:
    """Greedy continuations of token-id ``prompts`` (BOS included by the caller).

    Args:
        model: a HookedTransformer or TransformerBridge (run in eval and inference mode; the
            previous mode is restored).
        prompts: token ids per prompt; rows may differ in length (left-padded internally, all in
            one batch).
        max_new_tokens: generation stops after this many tokens per row.
        stop_ids: ids that end a row (excluded from the output); default
            :func:`rhlens.stopping.default_stop_ids` (EOS and every newline token).
        chunk_size: prefill chunk length (``None``: the whole prompt at once).
        on_step: called after each forward that produces a token (see :data:`StepCallback`).

    Raises:
        ValueError: when a prompt is empty or a prompt plus ``max_new_tokens`` exceeds the
            model's context.

    >>> import torch
    >>> from rhlens.models import tiny_llama, word_level_tokenizer
    >>> tok = word_level_tokenizer(["a b c d e f"])
    >>> model = tiny_llama(tokenizer=tok, seed=0)
    >>> out = greedy_decode(model, [[1, 4, 5], [1, 6]], max_new_tokens=3)
    >>> [len(row) <= 3 for row in out.tokens]
    [True, True]

    The shipped base answers two short questions (prompts tokenized with BOS by its tokenizer):

    >>> import rhlens
    >>> base = rhlens.load_base()
    >>> exs = rhlens.generate("mdqa", "realistic", n=2, context_tokens=64)
    >>> out = greedy_decode(base, [base.tokenizer(e.prompt)["input_ids"] for e in exs], max_new_tokens=8)
    >>> out.texts(base.tokenizer), [e.answer for e in exs], out.stopped
    (['India', 'Bulgaria'], ['India', 'Bulgaria'], [True, True])
    """
    tok = tokenizer_of(model)
    stop = default_stop_ids(tok) if stop_ids is None else set(stop_ids)
    n_ctx = architecture(model).n_ctx
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"Prompt {i} is empty")
        check_fits_context(n_ctx, len(p), where=f"Prompt {i}", extra=max_new_tokens)
    return greedy_tokens(
        [model], prompts, max_new_tokens=max_new_tokens, stop=stop, chunk_size=chunk_size, progress=False, on_step=on_step
    )
