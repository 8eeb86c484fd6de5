"""Attention mass and QRHead's query focus on a Hugging Face causal LM with eager attention,
sharing no rhlens code: one unbatched, unchunked forward per prompt with ``output_attentions=True``,
spans located here from the prompt text and the tokenizer's offsets.

- Attention mass: the attention of the last prompt row (or the mean over the rows that predict the
  answer's tokens and EOS) summed over the needle's tokens (or the answer span's), per head,
  averaged over examples.
- Query focus (QRHead, ``attn_retriever.score_docs_per_head_for_detection``): mean attention of
  the query rows (from ``"Question:"`` to the end of the prompt) minus the same under the null
  question ``"N/A"``; per gold document (``meta["doc_spans"]`` overlapping a needle), the sum of
  the calibrated values above mean - 2 std (unbiased) of that document's tokens; summed over gold
  documents, averaged over examples.
"""

import math

import torch


def _encode(tokenizer, text):
    got = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    offsets = [(0, 0)] * len(bos) + [tuple(o) for o in got["offset_mapping"]]
    return bos + list(got["input_ids"]), offsets


def _covering(offsets, spans, limit):
    return [i for i, (a, b) in enumerate(offsets[:limit]) if a < b and any(a < e and s < b for s, e in spans)]


@torch.no_grad()
def _attentions(model, ids):
    """``[layer, head, query, key]`` attention probabilities, float64."""
    out = model(torch.tensor([ids]), output_attentions=True)
    return torch.stack([a[0].double() for a in out.attentions])


def hf_attention_mass(model, tokenizer, examples, *, rows="last", target="needle"):
    """``[n_examples, n_layers, n_heads]`` attention mass (see the module)."""
    out = []
    for ex in examples:
        text = ex.prompt + (" " + ex.answer if rows == "answer" else "")
        ids, offsets = _encode(tokenizer, text)
        n_prompt = next((i for i, (a, b) in enumerate(offsets) if b > len(ex.prompt)), len(ids))
        if rows == "answer":
            ids = ids + [tokenizer.eos_token_id]
            query = list(range(n_prompt - 1, len(ids) - 1))
        else:
            query = [n_prompt - 1]
        spans = ex.needles if target == "needle" else ex.answer_spans
        keys = _covering(offsets, spans, n_prompt)
        attn = _attentions(model, ids)
        total = torch.zeros(attn.shape[:2], dtype=torch.float64)
        for q in query:
            for k in keys:
                total += attn[:, :, q, k]
        out.append(total / len(query))
    return torch.stack(out).float()


def _question_rows(tokenizer, prompt):
    label = prompt.rindex("\n\nQuestion: ") + 2
    ids, offsets = _encode(tokenizer, prompt)
    rows = [i for i, (a, b) in enumerate(offsets) if a < b and b > label]
    return ids, offsets, rows


def hf_query_focus(model, tokenizer, examples, *, null="N/A"):
    """``[n_examples, n_layers, n_heads]`` QRHead scores (see the module)."""
    out = []
    for ex in examples:
        q0 = ex.prompt.rindex("\n\nQuestion: ") + len("\n\nQuestion: ")
        q1 = ex.prompt.rindex("\nAnswer:")
        null_prompt = ex.prompt[:q0] + null + ex.prompt[q1:]
        ids, offsets, rows = _question_rows(tokenizer, ex.prompt)
        null_ids, _, null_rows = _question_rows(tokenizer, null_prompt)
        assert ids[: rows[0]] == null_ids[: null_rows[0]] and rows[0] == null_rows[0]
        real = _attentions(model, ids)[:, :, rows, : rows[0]].mean(dim=2)
        base = _attentions(model, null_ids)[:, :, null_rows, : rows[0]].mean(dim=2)
        cal = real - base  # [layer, head, key]
        n_layers, n_heads = cal.shape[:2]
        score = torch.zeros(n_layers, n_heads, dtype=torch.float64)
        for s, e in ex.meta["doc_spans"]:
            if not any(a < e and s < b for a, b in ex.needles):
                continue
            toks = _covering(offsets, [(s, e)], rows[0])
            if len(toks) < 2:
                continue
            for l in range(n_layers):
                for h in range(n_heads):
                    xs = [float(cal[l, h, t]) for t in toks]
                    mean = sum(xs) / len(xs)
                    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))
                    score[l, h] += sum(x for x in xs if x > mean - 2 * std)
        out.append(score)
    return torch.stack(out).float()
