"""Key-value retrieval (lost-in-the-middle style): a JSON object and a key to look up.

Realism sets what keys and values are: ``symbolic`` random chunk strings
(``"ba1-ke4-zu7"``), ``realistic``/``fictional`` person names mapped to cities.
Diversity sets the distractor values: ``varied`` fresh values, ``filler`` the
repeated filler phrases ("the grass is green"), so the haystack is low-diversity.
The needle is the whole gold pair as rendered (``"key": "value"``); the answer
span is the gold value inside it. ``position`` chooses the gold pair's index
(int) or depth fraction. Pairs are the length unit; the last few tokens come
from growing distractor pairs (an extra value chunk, symbolic; a middle name,
otherwise), up to ``MAX_GROW`` each, so at tiny contexts (64 tokens, 2-3
pairs) distractor keys can carry several middle names. Knobs: ``key_chunks`` / ``value_chunks`` (symbolic
string lengths, default 3 and 3).

>>> from rhlens.tasks import generate
>>> ex = generate("kv", "symbolic", n=1, context_tokens=128, seed=0, position=0)[0]
>>> ex.meta["gold_pair"], ex.needle_texts[0] == f'"{ex.meta["key"]}": "{ex.answer}"', ex.answer_texts == (ex.answer,)
(0, True, True)
"""

import random

from rhlens.tasks import templates, wordlists
from rhlens.tasks.fitting import fit_length
from rhlens.tasks.generators.common import ExampleSpec, Generated
from rhlens.tasks.world import symbol

MAX_GROW = 8


class _Pairs:
    """One example's key-value pairs, drawn from ``rng`` as the prompt needs them: the gold pair,
    then distractor pairs in order, each with its ``MAX_GROW`` fine steps (value chunks, symbolic;
    middle names, otherwise). :meth:`layout` is the prompt with ``k`` distractor pairs grown by
    ``f`` fine steps (what :func:`rhlens.tasks.fitting.fit_length` searches over)."""

    def __init__(self, spec: ExampleSpec, rng: random.Random):
        self.spec, self.rng, self.world = spec, rng, spec.world
        self.kc = spec.knobs.get("key_chunks", 3)
        self.vc = spec.knobs.get("value_chunks", 3)
        self.symbolic = spec.realism == "symbolic"
        self.used: set[str] = set()
        self.gold_key, self.gold_value = self.fresh_key(), self.value()
        self.pairs: list[tuple[str, str]] = []
        self.grow: list[list[str]] = []
        position = spec.position
        if position is None:
            position = rng.random()
        if isinstance(position, bool) or not isinstance(position, (int, float)):
            raise ValueError(f"position must be an int pair index or a float in [0, 1], got {position!r}")
        self.position = position

    def fresh_key(self):
        for _ in range(1000):
            k = symbol(self.rng, self.kc) if self.symbolic else self.world.entity("person", self.rng)
            if k not in self.used:
                self.used.add(k)
                return k
        raise ValueError("could not sample a fresh key; raise key_chunks")

    def value(self):
        return symbol(self.rng, self.vc) if self.symbolic else self.world.entity("city", self.rng)

    def first_pairs(self, n):
        """The first ``n`` distractor pairs, drawing those not drawn yet."""
        while len(self.pairs) < n:
            k = self.fresh_key()
            if self.spec.haystack == "filler":
                v = wordlists.FILLER_VALUES[len(self.pairs) % len(wordlists.FILLER_VALUES)]
            else:
                v = self.value()
                while v == self.gold_value:
                    v = self.value()
            self.pairs.append((k, v))
            # fine steps for this pair: more chunks (symbolic) or middle names
            self.grow.append([self.rng.choice(wordlists.SYMBOL_CHUNKS) if self.symbolic
                              else self.rng.choice(self.world.first) for _ in range(MAX_GROW)])
        return self.pairs[:n]

    def gold_index(self, k):
        position = self.position
        if isinstance(position, int):
            return position
        if not 0.0 <= position <= 1.0:
            raise ValueError(f"position={position} must be a depth fraction in [0, 1]")
        return int(round(position * k))

    def layout(self, k, f):
        ds = self.first_pairs(k)
        grown = []
        for i, (key, val) in enumerate(ds):
            steps = self.grow[i][: f // k + (1 if i < f % k else 0)] if k else []
            if self.symbolic:
                val = "-".join([val, *steps])
            elif steps:
                first, last = key.split(" ", 1)
                key = " ".join([first, *steps, last])
            grown.append((key, val))
        g = min(self.gold_index(k), k)
        grown.insert(g, (self.gold_key, self.gold_value))
        prompt, spans, pair_spans = templates.kv_prompt(grown, self.gold_key, instruction=self.spec.instruction)
        return prompt, (pair_spans[g], spans[g]), g, grown

    def prompt(self, k, f):
        return self.layout(k, f)[0]


def _fine_steps(k):
    return k * MAX_GROW


def generate_one(spec: ExampleSpec, rng: random.Random) -> Generated:
    pairs = _Pairs(spec, rng)
    k, f, n_tokens = fit_length(pairs.prompt, spec.context_tokens, spec.count,
                                fine_steps=_fine_steps, what="kv prompt")
    prompt, (gold_pair_span, span), g, grown = pairs.layout(k, f)
    position = pairs.position
    if isinstance(position, int) and g != position:
        raise ValueError(f"position={position} is beyond the {k + 1} pairs that fit")
    meta = spec.meta(n_pairs=k + 1, gold_pair=g, key=pairs.gold_key, n_tokens=n_tokens,
                  key_chunks=pairs.kc, value_chunks=pairs.vc)
    return Generated(prompt, pairs.gold_value, (gold_pair_span,), (span,), meta)
