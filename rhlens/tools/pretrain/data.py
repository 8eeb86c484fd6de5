"""Pretraining data for the embedded base model: induction text, then the tasks' QA forms.

Four kinds of :class:`rhlens.tasks.Example`, all written in the word-level world of
:func:`rhlens.tasks.vocabulary`:

- ``repeat``: a random segment that recurs 2-3 times at random offsets among random words,
  next-token loss on all of it; the strongest signal for content-based induction heads.
- ``induction``: random word sequences in which spans recur (the second occurrence is
  predictable only by copying the first), next-token loss on the whole text. This is the data on
  which induction and copying heads form quickly.
- ``lm``: whole task prompts with their answers, next-token loss on everything (the language of
  the tasks' world).
- ``qa``: task examples with loss on the answer only (retrieval in the tasks' own format).

Whole-text loss is expressed with the trainer's answer-only loss: the prompt is the first word
and the "answer" is the rest of the text.

>>> docs = induction_documents(2, context_tokens=48, seed=0)
>>> len(docs), docs[0].task, docs[0].meta["kind"]
(2, 'induction', 'induction')
>>> from rhlens.tasks import pretokenize
>>> 40 <= len(pretokenize(docs[0].prompt + docs[0].completion)) <= 48
True
"""

import random
from typing import Any, Sequence

from rhlens.tasks import TASKS, Example, generate, vocabulary

KINDS: tuple[str, ...] = ("repeat", "induction", "lm", "qa")
"""Data kinds of a stage's mix: repeated segments, recurring spans in noise, task text, task QA."""

POOL_SIZE: int | None = None
"""Words random documents draw from (``None``: the whole vocabulary)."""


def _word_pool(size: int | None = None) -> list[str]:
    """Vocabulary words usable in random text (no newline); ``size`` keeps a fixed random subset."""
    pool = [w for w in vocabulary() if w != "\n"]
    if size is not None and size < len(pool):
        pool = random.Random(f"pool-{size}").sample(pool, size)
    return pool


def repeat_document(rng: random.Random, pool: Sequence[str], n_tokens: int) -> str:
    """A random segment of 8 to ``n_tokens // 3`` words that occurs 2-3 times at random offsets
    among random words: half or more of the text is copyable, and only content-based induction
    (not a fixed look-back) predicts it."""
    length = rng.randint(8, max(8, n_tokens // 3))
    copies = min(rng.randint(2, 3), max(1, n_tokens // length))
    segment = [rng.choice(pool) for _ in range(length)]
    gaps = n_tokens - copies * length
    cuts = sorted(rng.randint(0, gaps) for _ in range(copies))
    words: list[str] = []
    previous = 0
    for cut in cuts:
        words += [rng.choice(pool) for _ in range(cut - previous)] + segment
        previous = cut
    words += [rng.choice(pool) for _ in range(gaps - previous)]
    return " ".join(words[:n_tokens])


def induction_document(rng: random.Random, pool: Sequence[str], n_tokens: int) -> str:
    """``n_tokens`` random words in which 1-3 spans of 3-12 words recur."""
    words = [rng.choice(pool) for _ in range(n_tokens)]
    for _ in range(rng.randint(1, 3)):
        length = rng.randint(3, min(12, max(3, n_tokens // 4)))
        if 2 * length + 1 > n_tokens:
            break
        src = rng.randrange(0, n_tokens - 2 * length)
        dst = rng.randrange(src + length, n_tokens - length + 1)
        words[dst : dst + length] = words[src : src + length]
    return " ".join(words)


def _whole_text_example(text: str, *, task: str, meta: dict) -> Example:
    first, _, rest = text.partition(" ")
    return Example(prompt=first, answer=rest, needles=((0, len(first)),), task=task, variant="pretrain", meta=meta)


def _random_documents(kind: str, make: Any, n: int, context_tokens: int, seed: int) -> list[Example]:
    rng = random.Random(f"{kind}-{seed}-{context_tokens}")
    pool = _word_pool(POOL_SIZE)
    out = []
    for i in range(n):
        n_tokens = rng.randint(int(context_tokens * 0.85), context_tokens)
        text = make(rng, pool, n_tokens)
        out.append(_whole_text_example(text, task=kind, meta={"kind": kind, "seed": seed, "index": i}))
    return out


def induction_documents(n: int, *, context_tokens: int, seed: int = 0) -> list[Example]:
    """``n`` documents of about ``context_tokens`` words (85% to 100%) with recurring spans."""
    return _random_documents("induction", induction_document, n, context_tokens, seed)


def repeat_documents(n: int, *, context_tokens: int, seed: int = 0) -> list[Example]:
    """``n`` documents of about ``context_tokens`` words, each one segment repeated."""
    return _random_documents("repeat", repeat_document, n, context_tokens, seed)


def qa_examples(
    n: int,
    *,
    context_tokens: int,
    seed: int = 0,
    tasks: Sequence[str] = TASKS,
    variants: Sequence[str] | None = None,
    whole_text: bool = False,
) -> list[Example]:
    """``n`` task examples cycling over ``tasks`` x ``variants`` at ``context_tokens``.

    With ``whole_text=True`` each becomes a next-token-loss document (prompt and answer).
    Combinations a generator cannot fit into ``context_tokens`` are skipped.
    """
    from rhlens.tasks import VARIANTS, ContextTooShortError

    combos = [(t, v) for t in tasks for v in (variants or VARIANTS)]
    rng = random.Random(f"qa-{seed}-{context_tokens}")
    out: list[Example] = []
    dead: set[tuple[str, str]] = set()
    i = 0
    while len(out) < n:
        live = [c for c in combos if c not in dead]
        if not live:
            raise ValueError(f"No task in {list(tasks)} fits a context of {context_tokens} tokens")
        task, variant = live[i % len(live)]
        i += 1
        try:
            (ex,) = generate(task, variant, 1, context_tokens=context_tokens, seed=rng.randrange(2**31))
        except ContextTooShortError:
            dead.add((task, variant))
            continue
        if whole_text:
            ex = _whole_text_example(ex.prompt + ex.completion, task="lm", meta={"kind": "lm", **ex.meta})
        out.append(ex)
    return out


def stage_examples(
    *, n: int, context_tokens: int, mix: dict[str, float], seed: int = 0, tasks: Sequence[str] = TASKS
) -> list[Example]:
    """A shuffled mixture of ``n`` examples with proportions ``mix`` over :data:`KINDS` (QA examples carry no ``meta["kind"]``).

    >>> ex = stage_examples(n=10, context_tokens=64, mix={"induction": 0.5, "qa": 0.5}, seed=1)
    >>> sorted({e.meta.get("kind", "qa") for e in ex})
    ['induction', 'qa']
    """
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"Unknown data kinds in mix: {sorted(unknown)}; use {', '.join(KINDS)}")
    total = sum(mix.values())
    if total <= 0:
        raise ValueError(f"mix {mix} has no positive weight")
    counts = {k: round(n * w / total) for k, w in mix.items()}
    out: list[Example] = []
    if counts.get("repeat"):
        out += repeat_documents(counts["repeat"], context_tokens=context_tokens, seed=seed + 3)
    if counts.get("induction"):
        out += induction_documents(counts["induction"], context_tokens=context_tokens, seed=seed)
    if counts.get("lm"):
        out += qa_examples(counts["lm"], context_tokens=context_tokens, seed=seed + 1, tasks=tasks, whole_text=True)
    if counts.get("qa"):
        out += qa_examples(counts["qa"], context_tokens=context_tokens, seed=seed + 2, tasks=tasks)
    random.Random(seed).shuffle(out)
    return out
