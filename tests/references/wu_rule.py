"""Wu et al.'s retrieval-score rule, written from their ``retrieval_head_detection.py`` with no
rhlens code: encoding with character-to-token spans, the stop rule, the ROUGE gate, the per-step
hit rule and the result.

- Encoding: the prompt (decode) or prompt + ``" " + answer`` (forced, then EOS) is tokenized once
  with offsets; BOS is prepended when the tokenizer has one. A prompt token is a copy position when
  its characters intersect an answer span (Wu: ``real_needle``'s tokens).
- Stop: EOS, and the newline token found by vocabulary lookup (``<0x0A>`` as Wu does for Llama;
  ``"\\n"`` for word-level vocabularies; ``Ċ`` for byte-level BPE).
- Gate: ROUGE-1 recall (lowercased ``\\w+`` words, clipped counts) of the answer, best over the
  answer and its aliases, must exceed the gate.
- Hit: at each scored step, for each head, the top-1 (top-k) attended key of the last query; a hit
  when it is a copy position holding the token generated at that step; weight 1/len(copy positions).
"""

import collections
import re
from dataclasses import dataclass, field

import torch


@dataclass
class Encoded:
    prompt: list  # token ids, BOS first when the tokenizer has one
    answer: list  # forced only: answer token ids then EOS
    copy: list  # sorted prompt positions inside the answer spans


def encode(tokenizer, example, *, forced: bool, bos: bool = True) -> Encoded:
    spans = list(example.answer_spans)
    assert spans, f"example without answer spans: {example!r}"
    text = example.prompt + (" " + example.answer if forced else "")
    got = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = list(got["input_ids"]), [tuple(o) for o in got["offset_mapping"]]
    n = len(ids)
    if forced:  # the first token reaching past the prompt starts the answer
        n = next(i for i, (a, b) in enumerate(offs) if b > len(example.prompt))
    head = [tokenizer.bos_token_id] if bos and tokenizer.bos_token_id is not None else []
    copy = []
    for i in range(n):
        a, b = offs[i]
        if a < b and any(max(a, s) < min(b, e) for s, e in spans):
            copy.append(len(head) + i)
    answer = ids[n:] + ([tokenizer.eos_token_id] if forced and tokenizer.eos_token_id is not None else [])
    return Encoded(prompt=head + ids[:n], answer=answer, copy=copy)


def stop_ids(tokenizer) -> set:
    vocab = tokenizer.get_vocab()
    out = {vocab[t] for t in ("<0x0A>", "\n", "\u010a") if t in vocab}
    if tokenizer.eos_token_id is not None:
        out.add(tokenizer.eos_token_id)
    return out


def rouge1_recall(reference: str, prediction: str) -> float:
    ref = collections.Counter(re.findall(r"\w+", reference.lower()))
    pred = collections.Counter(re.findall(r"\w+", prediction.lower()))
    total = sum(ref.values())
    return 0.0 if not total else sum(min(c, pred[w]) for w, c in ref.items()) / total


def answer_rouge(example, response: str) -> float:
    return max(rouge1_recall(r, response) for r in (example.answer, *example.aliases))


def count_step(rows, token: int, enc: Encoded, hits, top_k: int = 1) -> None:
    """Wu's ``retrieval_calculate`` for one step: ``rows[layer]`` is ``[head, key]`` (the last
    query's attention); at most one hit per head (their ``break``)."""
    copy = set(enc.copy)
    for layer, attn in enumerate(rows):
        for head in range(attn.shape[0]):
            for i in attn[head].topk(min(top_k, attn.shape[-1])).indices.tolist():
                if i in copy and token == enc.prompt[i]:
                    hits[layer, head] += 1
                    break


@dataclass
class Scores:
    """Reference result, attribute names as rhlens's HeadScores."""

    hits: torch.Tensor  # [example, layer, head]
    answer_tokens: torch.Tensor  # [example]
    responses: list
    rouge: torch.Tensor
    counted: torch.Tensor
    meta: dict = field(default_factory=dict)

    @property
    def trials(self):
        """The per-trial fields, under the name rhlens's HeadScores keeps them (here: this object)."""
        return self

    @property
    def per_example(self):
        return (self.hits.double() / self.answer_tokens.double()[:, None, None]).float()

    @property
    def scores(self):
        if not self.counted.any():
            return torch.zeros(self.hits.shape[1:])
        return self.per_example[self.counted].double().mean(0).float()


def finish(examples, encoded, hits, responses, rouge_gate, **meta) -> Scores:
    rouge = torch.tensor([answer_rouge(ex, r) for ex, r in zip(examples, responses)], dtype=torch.float32)
    counted = torch.ones(len(examples), dtype=torch.bool) if rouge_gate is None else rouge > rouge_gate
    return Scores(hits=hits, answer_tokens=torch.tensor([len(e.copy) for e in encoded]), responses=list(responses),
                  rouge=rouge, counted=counted, meta=meta)


def response_text(tokenizer, ids) -> str:
    return tokenizer.decode(ids, skip_special_tokens=True).strip()
