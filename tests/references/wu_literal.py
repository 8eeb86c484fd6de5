"""Wu et al.'s ``retrieval_head_detection.py`` read literally, on a Hugging Face causal LM with eager
attention; no rhlens code (the reference of ``retrieval_scores(rule="wu-literal")``).

What it follows from Wu's file (``evaluate_and_log``, ``find_needle_idx``, ``decode``,
``retrieval_calculate``):

- ``prompt_ids``: the tokenizer's encoding of the prompt with its special tokens (BOS first; added
  when the tokenizer has no template that adds it).
- Span: ``real_needle`` (here ``example.answer``) tokenized without special tokens; the first
  ``i`` over the whole prompt whose window ``prompt_ids[i : i + len]`` has a token set covering
  more than 90% of the needle's set gives ``[i, i + len)``, else ``(-1, -1)``. Done here the way
  Wu does it, one set per window.
- Loop: prefill ``prompt_ids[:-1]``, then feed the last prompt token; per step take the argmax,
  append it, score the step, and break when the token's string is the line-feed token (Wu:
  ``'<0x0A>'``; for other vocabularies the token spelled ``"\\n"`` or ``Ċ``), up to 50 steps.
- Hit: the top-1 (top-k) key of the last query row in ``[start, end)`` holding the generated id;
  weight ``1 / (end - start)``; at most one per head and step.
- Response: ``decode(output, skip_special_tokens=True).strip()`` (the stop token included).
- Gate: ``rouge_score``'s ``RougeScorer(['rouge1'], use_stemmer=True)`` recall of ``real_needle``
  over 0.5. When ``rouge_score`` is not installed, :func:`rouge1_recall` falls back to its
  tokenizer without the stemmer (lowercase, runs of ``[a-z0-9]``), so it cannot check the stemming
  cases (``HAVE_ROUGE_SCORE`` tells the tests).
"""

import collections
import re

import torch

from tests.references.wu_rule import Scores  # the result object only (per-example and mean scores)

try:
    from rouge_score import rouge_scorer

    HAVE_ROUGE_SCORE = True
    _SCORER = rouge_scorer.RougeScorer(["rouge1", "rougeL"], use_stemmer=True)
except ImportError:  # pragma: no cover - depends on the environment
    HAVE_ROUGE_SCORE = False


def rouge1_recall(reference: str, response: str) -> float:
    if HAVE_ROUGE_SCORE:
        return _SCORER.score(reference, response)["rouge1"].recall
    ref = collections.Counter(re.findall(r"[a-z0-9]+", reference.lower()))
    got = collections.Counter(re.findall(r"[a-z0-9]+", response.lower()))
    total = sum(ref.values())
    return sum(min(c, got[w]) for w, c in ref.items()) / total if total else 0.0


def find_needle_idx(prompt_ids: list, needle_ids: list) -> tuple:
    span_len = len(needle_ids)
    for i in range(len(prompt_ids)):
        span_ids = set(prompt_ids[i : i + span_len])
        overlap = float(len(span_ids.intersection(set(needle_ids)))) / len(set(needle_ids))
        if overlap > 0.9:
            return i, i + span_len
    return -1, -1


def line_feed_tokens(tokenizer) -> set:
    vocab = tokenizer.get_vocab()
    out = {vocab[t] for t in ("<0x0A>", "\n", "\u010a") if t in vocab}
    assert out, "no line-feed token in this vocabulary"
    return out


@torch.no_grad()
def wu_literal_scores(model, tokenizer, examples, *, decode_len=50, rouge_gate=0.5, top_k=1):
    """Reference scores of a ``transformers`` causal LM loaded with ``attn_implementation="eager"``."""
    from transformers import DynamicCache

    assert model.config._attn_implementation == "eager", "the reference needs eager attention (attention weights)"
    cfg = model.config
    stop = line_feed_tokens(tokenizer)
    hits = torch.zeros(len(examples), cfg.num_hidden_layers, cfg.num_attention_heads, dtype=torch.long)
    weights, responses, rouge, spans = [], [], [], []
    for n, ex in enumerate(examples):
        prompt_ids = tokenizer(ex.prompt)["input_ids"]
        if tokenizer.bos_token_id is not None and prompt_ids[:1] != [tokenizer.bos_token_id]:
            prompt_ids = [tokenizer.bos_token_id] + prompt_ids  # a tokenizer without a template: BOS as trained
        needle_ids = tokenizer(ex.answer, add_special_tokens=False)["input_ids"]
        start, end = find_needle_idx(prompt_ids, needle_ids)
        spans.append((start, end))
        weights.append(len(needle_ids))  # Wu's 1 / (needle_end - needle_start); a miss never hits
        cache = DynamicCache()
        if len(prompt_ids) > 1:
            model(torch.tensor([prompt_ids[:-1]]), cache=cache, use_cache=True)
        inp, output = prompt_ids[-1], []
        for _ in range(decode_len):
            res = model(torch.tensor([[inp]]), cache=cache, use_cache=True, output_attentions=True)
            inp = int(res.logits[0, -1].argmax())
            output.append(inp)
            for layer, attn in enumerate(res.attentions):
                for head in range(attn.shape[1]):
                    for i in attn[0, head, -1].float().topk(top_k).indices.tolist():
                        if start <= i < end and i < len(prompt_ids) and inp == prompt_ids[i]:
                            hits[n, layer, head] += 1
                            break
            if inp in stop:
                break
        response = tokenizer.decode(output, skip_special_tokens=True).strip()
        responses.append(response)
        rouge.append(rouge1_recall(ex.answer, response))
    rouge_t = torch.tensor(rouge, dtype=torch.float32)
    counted = torch.ones(len(examples), dtype=torch.bool) if rouge_gate is None else rouge_t * 100 > rouge_gate * 100
    return Scores(hits=hits, answer_tokens=torch.tensor(weights), responses=responses, rouge=rouge_t, counted=counted,
                  meta={"spans": spans})
