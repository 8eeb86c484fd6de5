"""Needle in a haystack (Wu et al.): one needle sentence at a depth in continuous text.

The needle is a fact sentence (realistic, fictional or symbolic); the needle
span is the whole sentence; the answer span is the answer inside it (what a
retrieval head copies). ``position`` is a depth
fraction in [0, 1] (of the haystack's tokens; the needle goes to the nearest
sentence boundary) or an int sentence index. A custom needle is given with the
``needle=(sentence, question, answer)`` knob.

>>> from rhlens.tasks import generate
>>> ex = generate("niah", "realistic-filler", n=1, context_tokens=200, seed=0, position=0.5)[0]
>>> ex.answer in ex.needle_texts[0], ex.answer_texts == (ex.answer,), abs(ex.meta["depth"] - 0.5) < 0.1
(True, True, True)
"""

import random

from rhlens.tasks import templates
from rhlens.tasks.fitting import fit_length
from rhlens.tasks.generators.common import ExampleSpec, Generated, haystack_stream, question_fact, question_text
from rhlens.tasks.spans import find_word


def _needle(spec: ExampleSpec, rng, exclude):
    custom = spec.knobs.get("needle")
    if custom is not None:
        sentence, question, answer = custom
        at = find_word(sentence, answer) if isinstance(answer, str) else None
        if at is None:
            raise ValueError(f"needle answer {answer!r} is not a whole word (or words) of the "
                             f"needle sentence {sentence!r}; put the answer in the sentence")
        return sentence, question, answer, at
    rel, subject, _kind, fact = question_fact(spec, rng, exclude)
    exclude |= {subject, fact.answer}
    return fact.text, question_text(spec, rel, subject), fact.answer, (fact.start, fact.end)


class _Haystack:
    """The niah prompt as ``layout(k, f)``: ``head``, then the first ``k`` sentences of ``stream``
    and ``f`` words of the next, with ``needle`` at the sentence boundary nearest ``position`` (a
    depth fraction or a sentence index), then ``tail``."""

    def __init__(self, stream, head, needle, tail, position):
        self.stream, self.head, self.needle, self.tail, self.position = stream, head, needle, tail, position

    def layout(self, k, f):
        """``(prompt, needle start, sentence index of the needle, number of sentences)``."""
        stream, position, head = self.stream, self.position, self.head
        sents = [stream.get(i) for i in range(k)]
        if f:
            sents.append(" ".join(stream.get(k).split()[:f]))
        if isinstance(position, int):
            at = min(position, len(sents))
        else:
            sizes = [len(x) + 1 for x in sents]
            total = sum(sizes)
            at, acc, best = 0, 0, None
            for i in range(len(sents) + 1):
                gap = abs(acc - position * total)
                if best is None or gap < best:
                    best, at = gap, i
                if i < len(sents):
                    acc += sizes[i]
        before = " ".join(sents[:at])
        after = " ".join(sents[at:])
        start = len(head) + len(before) + (1 if before else 0)
        text = head + before + (" " if before else "") + self.needle + (" " if after else "") + after + self.tail
        return text, start, at, len(sents)

    def prompt(self, k, f):
        return self.layout(k, f)[0]

    def fine_steps(self, k):
        return max(0, len(self.stream.get(k).split()) - 1)


def generate_one(spec: ExampleSpec, rng: random.Random) -> Generated:
    exclude: set[str] = set()
    needle, question, answer, (a, b) = _needle(spec, rng, exclude)
    stream = haystack_stream(spec, random.Random(rng.getrandbits(64)), None, None,
                             frozenset(exclude), title="a story")
    head = templates.head("niah", spec.instruction)
    tail = templates.tail(question)
    position = spec.position if spec.position is not None else rng.random()
    if isinstance(position, bool) or not isinstance(position, (int, float)):
        raise ValueError(f"position must be a depth fraction or sentence index, got {position!r}")
    if isinstance(position, float) and not 0.0 <= position <= 1.0:
        raise ValueError(f"position={position} must be a depth fraction in [0, 1]")
    hay = _Haystack(stream, head, needle, tail, position)
    k, f, n_tokens = fit_length(hay.prompt, spec.context_tokens, spec.count,
                                fine_steps=hay.fine_steps, what="niah prompt")
    prompt, start, at, n_sents = hay.layout(k, f)
    hay_start, hay_end = len(head), len(prompt) - len(tail)
    depth = (start - hay_start) / max(1, hay_end - hay_start - len(needle))
    meta = spec.meta(n_tokens=n_tokens, sentence_index=at, n_sentences=n_sents,
                  depth=round(depth, 4), needle=needle, question=question)
    return Generated(prompt, answer, ((start, start + len(needle)),), ((start + a, start + b),), meta)
