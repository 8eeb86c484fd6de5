"""Slow, obviously-correct retrieval scorers, for tests and ``bench/bench_scoring.py``.

- :func:`naive_retrieval_scores`: one example at a time, no cache: every step re-runs the whole
  sequence, keeps the full ``hook_pattern`` of every layer and applies Wu et al.'s rule with a
  Python loop over layers, heads and top-k positions. It shares nothing with the fast path but
  the example encoding and the ROUGE gate.
- :func:`wu_port_scores`: a port of the loop in Wu et al.'s ``retrieval_head_detection.py``
  (``decode`` + ``retrieval_calculate``): prefill all but the last prompt token in one pass
  (full attention), then decode one token per step with the key/value cache, read the new
  token's attention row of every layer from the pattern hook and loop over heads in Python,
  top-1 per head, one ``.item()`` comparison per position. ``forced=True`` feeds the gold answer
  instead of the argmax (the same loop, teacher-forced). It is the speed and memory baseline.

Both return :class:`HeadScores` comparable with :func:`rhlens.retrieval_scores`.

>>> from rhlens.models import tiny_llama, word_level_tokenizer
>>> from rhlens.tasks.example import Example
>>> prompt = "the key is red . Question : what is the key ? Answer :"
>>> ex = Example(prompt=prompt, answer="red", needles=((11, 14),), task="kv", variant="symbolic")
>>> model = tiny_llama(tokenizer=word_level_tokenizer([prompt]), seed=0)
>>> naive = naive_retrieval_scores(model, [ex], max_new_tokens=3, rouge_gate=None)
>>> port = wu_port_scores(model, [ex], max_new_tokens=3, rouge_gate=None)
>>> naive.hits.equal(port.hits), naive.responses == port.responses
(True, True)
"""

from typing import Any, Sequence

import torch

from rhlens.adapter import analysis_mode, architecture, forward, hook_name, hooks, model_device, new_kv_cache, tokenizer_of
from rhlens.generation import default_stop_ids
from rhlens.scoring._common import Item, assemble, prepare
from rhlens.scoring.results import HeadScores


def _count_step(attn: list[torch.Tensor], token: int, prompt: list[int], needle: set[int], hits: torch.Tensor, top_k: int) -> None:
    """Wu's ``retrieval_calculate`` for one step: ``attn[layer]`` is ``[head, key]`` (one query
    row); at most one hit per head (their ``break``)."""
    for layer, rows in enumerate(attn):
        for head in range(rows.shape[0]):
            _, idx = rows[head].topk(min(top_k, rows.shape[-1]))
            for i in idx.tolist():
                if i in needle and token == prompt[i]:
                    hits[layer, head] += 1
                    break


def _pattern_hooks(model: Any, store: list) -> list:
    """Hooks saving each layer's full ``hook_pattern`` ``[batch, head, q, key]`` into ``store``."""

    def save(pattern: torch.Tensor, hook: Any, layer: int) -> None:
        store[layer] = pattern.detach().clone()

    return [(hook_name("pattern", l), lambda p, hook, l=l: save(p, hook, l)) for l in range(len(store))]


def _loop_state(model: Any, n_items: int) -> tuple[Any, set[int], torch.device, torch.Tensor, list]:
    """Tokenizer, stop ids, device, the ``[item, layer, head]`` hit counts and the per-layer
    pattern store that both slow loops share."""
    arch = architecture(model)
    tok = tokenizer_of(model)
    hits = torch.zeros(n_items, arch.n_layers, arch.n_heads, dtype=torch.long)
    return tok, default_stop_ids(tok), model_device(model), hits, [None] * arch.n_layers


def naive_retrieval_scores(
    model: Any,
    examples: Sequence[Any],
    *,
    method: str = "decode",
    max_new_tokens: int = 50,
    rouge_gate: float | None = 0.5,
    top_k: int = 1,
) -> HeadScores:
    """:func:`rhlens.retrieval_scores` without cache, batching or reduction in hooks."""
    items = prepare(model, examples, method=method, max_new_tokens=max_new_tokens)
    tok, stop, device, hits, store = _loop_state(model, len(items))
    responses = []
    with analysis_mode(model), hooks(model, _pattern_hooks(model, store)):
        for n, item in enumerate(items):
            prompt = item.enc.prompt_tokens
            needle = set(item.enc.needle_mask(item.enc.prompt_len).nonzero().flatten().tolist())
            if method == "decode":
                seq, out = list(prompt), []
                for _ in range(max_new_tokens):
                    logits = forward(model, torch.tensor([seq], device=device))
                    token = int(logits[0, -1].argmax())
                    _count_step([p[0, :, -1] for p in store], token, prompt, needle, hits[n], top_k)
                    if token in stop:
                        break
                    out.append(token)
                    seq.append(token)
            else:
                seq = item.enc.tokens
                logits = forward(model, torch.tensor([seq], device=device))
                out = []
                for t in range(item.enc.prompt_len, len(seq)):
                    _count_step([p[0, :, t - 1] for p in store], seq[t], prompt, needle, hits[n], top_k)
                    out.append(int(logits[0, t - 1].argmax()))
                out = out[: next((i for i, t in enumerate(out) if t in stop), len(out))]
            responses.append(tok.decode(out, skip_special_tokens=True).strip())
    meta = {"method": method, "top_k": top_k, "max_new_tokens": max_new_tokens if method == "decode" else None, "impl": "naive"}
    return assemble(model, items, hits, responses, rouge_gate=rouge_gate, meta=meta)


def wu_port_scores(
    model: Any,
    examples: Sequence[Any],
    *,
    forced: bool = False,
    max_new_tokens: int = 50,
    rouge_gate: float | None = 0.5,
    top_k: int = 1,
) -> HeadScores:
    """Wu et al.'s loop, ported to TransformerLens: one example at a time, KV cache, Python loop
    over heads (see the module docstring). Needs a single contiguous needle per example, as
    Wu's ``needle_start``/``needle_end``; ``forced=True`` decodes the gold answer instead."""
    method = "forced" if forced else "decode"
    items = prepare(model, examples, method=method, max_new_tokens=max_new_tokens)
    tok, stop, device, hits, store = _loop_state(model, len(items))
    responses = []
    with analysis_mode(model), hooks(model, _pattern_hooks(model, store)):
        for n, item in enumerate(items):
            responses.append(_wu_one(model, item, store, hits[n], forced, max_new_tokens, top_k, stop, tok, device))
    meta = {"method": method, "top_k": top_k, "max_new_tokens": None if forced else max_new_tokens, "impl": "wu_port"}
    return assemble(model, items, hits, responses, rouge_gate=rouge_gate, meta=meta)


def _wu_one(model, item: Item, store, hits, forced, max_new_tokens, top_k, stop, tok, device) -> str:
    spans = item.enc.needle_spans
    needle_start, needle_end = min(s for s, _ in spans), max(e for _, e in spans)
    if needle_end - needle_start != item.n_needle:
        raise ValueError(f"Example {item.index}: the Wu port needs one contiguous needle span, got {spans}")
    prompt_ids = torch.tensor(item.enc.prompt_tokens, device=device)
    cache = new_kv_cache(model, 1)
    forward(model, prompt_ids[None, :-1], past_kv_cache=cache)  # Wu's prefill: input_ids[:, :-1]
    inp = prompt_ids[-1]
    gold = item.enc.answer_tokens
    steps = len(gold) if forced else max_new_tokens
    output = []
    for step in range(steps):
        logits = forward(model, inp.view(1, 1), past_kv_cache=cache)
        pred = logits[0, -1].argmax()
        inp = torch.tensor(gold[step], device=device) if forced else pred
        output.append(int(pred))
        for layer in range(len(store)):  # Wu's retrieval_calculate, one head at a time
            attention = store[layer][0]
            for head in range(attention.shape[0]):
                _, idx = attention[head][-1].topk(top_k)
                for i in idx:
                    if needle_start <= i < needle_end and inp.item() == prompt_ids[i].item():
                        hits[layer][head] += 1
                        break
        if not forced and inp.item() in stop:
            break
    output = output[: next((i for i, t in enumerate(output) if t in stop), len(output))]
    return tok.decode(output, skip_special_tokens=True).strip()
