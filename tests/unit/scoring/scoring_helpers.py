"""Test helpers: random tiny models and examples whose needles make hits likely."""

import random

from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.tasks.example import Example

WORDS = "red blue green gold pink grey".split()


def build_tokenizer():
    return word_level_tokenizer(WORDS + ["\n"])


def build_model(**overrides):
    """A tiny Llama over six colour words (so generated words are often needle words)."""
    cfg = dict(tokenizer=build_tokenizer(), seed=3)
    cfg.update(overrides)
    return tiny_llama(**cfg)


def random_example(rng: random.Random, n_words: int, *, two_needles: bool = False) -> Example:
    """``n_words`` random colour words with one (or two) random needle spans. The answer is three
    words from the first needle's start; the answer spans (what is scored) are the first (up to)
    three words of each needle, and the second needle's words are an alias (an answer span holds
    the answer or an alias)."""
    words = [rng.choice(WORDS) for _ in range(n_words)]
    cuts = sorted(rng.sample(range(1, n_words), 4 if two_needles else 2))
    starts, pos = [], 0
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    prompt = " ".join(words)
    pairs = [(cuts[0], cuts[1])] + ([(cuts[2], cuts[3])] if two_needles else [])
    needles = tuple((starts[a], starts[b - 1] + len(words[b - 1])) for a, b in pairs)
    spans = tuple((starts[a], starts[min(b, a + 3) - 1] + len(words[min(b, a + 3) - 1])) for a, b in pairs)
    aliases = tuple(prompt[s:e] for s, e in spans[1:])
    return Example(prompt=prompt, answer=" ".join(words[cuts[0] : cuts[0] + 3]), needles=needles, task="niah",
                   variant="symbolic", answer_spans=spans, aliases=aliases)


def random_examples(lengths, seed: int = 0, **kwargs):
    rng = random.Random(seed)
    return [random_example(rng, n, **kwargs) for n in lengths]
