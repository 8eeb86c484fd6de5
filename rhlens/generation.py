"""Batched greedy decoding with chunked prefill through a key/value cache.

This is the decoding loop every rhlens analyzer shares (evaluation, Wu et al.'s retrieval
scores, knockout and patching effects). Prompts are left-padded; the prompt is fed in chunks of
``chunk_size`` tokens through the model's key/value cache (attention memory ``O(chunk x
context)`` per layer), then one token per step. Hooks the caller attached stay active for every
forward; ``on_step`` is told which token each forward produced, so a hook that recorded the
last query's attention can be matched with the token it led to. Attention runs through the fused
(SDPA) path where the model supports it; a layer whose pattern, scores or ``z`` is hooked runs
TransformerLens's eager attention, so hooks see exactly what they expect.

>>> import torch
>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> tok = word_level_tokenizer(["a b c d e f"])
>>> model = tiny_llama(tokenizer=tok, seed=0)
>>> out = greedy_generate(model, [[1, 4, 5], [1, 6]], max_new_tokens=3)
>>> [len(row) <= 3 for row in out.tokens]
[True, True]
"""

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from jaxtyping import Bool, Int
from torch import Tensor

from rhlens.adapter import analysis_mode, architecture, forward, model_device, new_kv_cache, tokenizer_of
from rhlens.adapter.fused import fused_attention
from rhlens.encoding import pad_id_of, pad_left

StepCallback = Callable[[int, Int[Tensor, "batch"], Bool[Tensor, "batch"]], None]
"""``on_step(step, next_tokens, active)``: after the forward of decoding step ``step`` (0 is the
last prompt position), ``next_tokens[b]`` is row ``b``'s greedy token and ``active[b]`` is False
for rows that had already stopped (their token is ignored)."""


@dataclass(frozen=True)
class Generation:
    """Greedy continuations.

    Attributes:
        tokens: per prompt, the generated ids, stopping token excluded.
        stopped: per prompt, whether a stop token ended it (else ``max_new_tokens`` did).
    """

    tokens: list[list[int]]
    stopped: list[bool]

    def texts(self, tokenizer: Any) -> list[str]:
        """Decoded continuations (special tokens skipped, surrounding space stripped)."""
        return [tokenizer.decode(t, skip_special_tokens=True).strip() for t in self.tokens]


def default_stop_ids(tokenizer: Any) -> set[int]:
    """EOS and newline token ids of ``tokenizer`` (Wu et al. stop at either)."""
    stop = set()
    if tokenizer.eos_token_id is not None:
        stop.add(int(tokenizer.eos_token_id))
    for text in ("\n", "\n\n"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(ids) == 1:
            stop.add(int(ids[0]))
    vocab_nl = tokenizer.convert_tokens_to_ids("\n") if hasattr(tokenizer, "convert_tokens_to_ids") else None
    if isinstance(vocab_nl, int) and vocab_nl != tokenizer.unk_token_id:
        stop.add(vocab_nl)
    return stop


def advance_rows(
    next_tokens: Int[Tensor, "batch"], active: Bool[Tensor, "batch"], stop: set[int], out: list[list[int]]
) -> list[int]:
    """Append each active row's token to ``out``; a stop token deactivates the row instead.

    Returns the rows that stopped at this step. ``active`` is updated in place.
    """
    stopped = []
    for b in active.nonzero().flatten().tolist():
        t = int(next_tokens[b])
        if t in stop:
            active[b] = False
            stopped.append(b)
        else:
            out[b].append(t)
    return stopped


def prefill(
    model: Any,
    tokens: Int[Tensor, "batch pos"],
    attention_mask: Int[Tensor, "batch pos"],
    *,
    chunk_size: int | None = None,
    cache: Any = None,
) -> tuple[Tensor, Any]:
    """Run ``tokens`` through ``model`` in chunks; return last-position logits ``[batch, d_vocab]``
    and the filled cache."""
    if cache is None:
        cache = new_kv_cache(model, tokens.shape[0])
    step = chunk_size or tokens.shape[1]
    logits = None
    for start in range(0, tokens.shape[1], step):
        end = min(start + step, tokens.shape[1])
        logits = forward(
            model, tokens[:, start:end], attention_mask=attention_mask[:, start:end], past_kv_cache=cache
        )[:, -1]
    assert logits is not None
    return logits, cache


def greedy_generate(
    model: Any,
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
        prompts: token ids per prompt; rows may differ in length (left-padded internally).
        max_new_tokens: generation stops after this many tokens per row.
        stop_ids: ids that end a row (excluded from the output); default EOS and newline.
        chunk_size: prefill chunk length (``None``: the whole prompt at once).
        on_step: called after each forward that produces a token (see :data:`StepCallback`).

    Raises:
        ValueError: when a prompt plus ``max_new_tokens`` exceeds the model's context.
    """
    tok = tokenizer_of(model)
    stop = default_stop_ids(tok) if stop_ids is None else set(stop_ids)
    n_ctx = architecture(model).n_ctx
    for i, p in enumerate(prompts):
        if not p:
            raise ValueError(f"Prompt {i} is empty")
        if len(p) + max_new_tokens > n_ctx:
            raise ValueError(
                f"Prompt {i} has {len(p)} tokens; with max_new_tokens={max_new_tokens} it exceeds the "
                f"model's context of {n_ctx}. Shorten it or extend the context (rhlens.extend_context)."
            )
    device = model_device(model)
    batch = pad_left(prompts, pad_id_of(tok), device=device)
    n = len(prompts)
    out: list[list[int]] = [[] for _ in range(n)]
    stopped = [False] * n
    with analysis_mode(model), fused_attention(model, strict=False):
        logits, cache = prefill(model, batch.tokens, batch.attention_mask, chunk_size=chunk_size)
        active = torch.ones(n, dtype=torch.bool, device=device)
        ones = torch.ones(n, 1, dtype=torch.long, device=device)
        for step in range(max_new_tokens):
            next_tokens = logits.argmax(dim=-1)
            if on_step is not None:
                on_step(step, next_tokens, active.clone())
            for b in advance_rows(next_tokens, active, stop, out):
                stopped[b] = True
            if not bool(active.any()) or step == max_new_tokens - 1:
                break
            logits = forward(model, next_tokens[:, None], attention_mask=ones, past_kv_cache=cache)[:, -1]
    return Generation(tokens=out, stopped=stopped)
