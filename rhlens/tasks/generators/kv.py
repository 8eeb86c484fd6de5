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


def generate_one(spec: ExampleSpec, rng: random.Random) -> Generated:
    world = spec.world
    kc = spec.knobs.get("key_chunks", 3)
    vc = spec.knobs.get("value_chunks", 3)
    symbolic = spec.realism == "symbolic"
    used = set()

    def fresh_key():
        for _ in range(1000):
            k = symbol(rng, kc) if symbolic else world.entity("person", rng)
            if k not in used:
                used.add(k)
                return k
        raise ValueError("could not sample a fresh key; raise key_chunks")

    def value():
        return symbol(rng, vc) if symbolic else world.entity("city", rng)

    gold_key, gold_value = fresh_key(), value()
    pairs: list[tuple[str, str]] = []
    grow: list[tuple[str, str]] = []

    def pair(i):
        while len(pairs) <= i:
            k = fresh_key()
            if spec.haystack == "filler":
                v = wordlists.FILLER_VALUES[len(pairs) % len(wordlists.FILLER_VALUES)]
            else:
                v = value()
                while v == gold_value:
                    v = value()
            pairs.append((k, v))
            # fine steps for this pair: more chunks (symbolic) or middle names
            grow.append([rng.choice(wordlists.SYMBOL_CHUNKS) if symbolic
                         else rng.choice(world.first) for _ in range(MAX_GROW)])
        return pairs[i]

    position = spec.position
    if position is None:
        position = rng.random()
    if isinstance(position, bool) or not isinstance(position, (int, float)):
        raise ValueError(f"position must be an int pair index or a float in [0, 1], got {position!r}")

    def gold_index(k):
        if isinstance(position, int):
            return position
        if not 0.0 <= position <= 1.0:
            raise ValueError(f"position={position} must be a depth fraction in [0, 1]")
        return int(round(position * k))

    def layout(k, f):
        ds = [pair(i) for i in range(k)]
        grown = []
        for i, (key, val) in enumerate(ds):
            steps = grow[i][: f // k + (1 if i < f % k else 0)] if k else []
            if symbolic:
                val = "-".join([val, *steps])
            elif steps:
                first, last = key.split(" ", 1)
                key = " ".join([first, *steps, last])
            grown.append((key, val))
        g = min(gold_index(k), k)
        grown.insert(g, (gold_key, gold_value))
        prompt, spans, pair_spans = templates.kv_prompt(grown, gold_key, instruction=spec.instruction)
        return prompt, (pair_spans[g], spans[g]), g, grown

    k, f, n_tokens = fit_length(lambda k, f: layout(k, f)[0], spec.context_tokens, spec.count,
                                fine_steps=lambda k: k * MAX_GROW, what="kv prompt")
    prompt, (gold_pair_span, span), g, grown = layout(k, f)
    if isinstance(position, int) and g != position:
        raise ValueError(f"position={position} is beyond the {k + 1} pairs that fit")
    meta = spec.meta(n_pairs=k + 1, gold_pair=g, key=gold_key, n_tokens=n_tokens,
                  key_chunks=kc, value_chunks=vc)
    return Generated(prompt, gold_value, (gold_pair_span,), (span,), meta)
