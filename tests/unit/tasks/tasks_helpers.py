"""Shared test helpers for the task layer (no pytest fixtures here)."""

import functools

from rhlens.tasks import TASKS, VARIANTS, generate, vocabulary

PAIRS = [(t, v) for t in TASKS for v in VARIANTS]


@functools.lru_cache(maxsize=1)
def bpe_tokenizer():
    """A tiny BPE tokenizer (``tokenizers`` library, no downloads) trained on
    generated prompts, so its token counts differ from the word-level ones."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [" ".join(vocabulary())]
    for t, v in PAIRS:
        texts.extend(e.prompt for e in generate(t, v, n=1, context_tokens=128, seed=99))
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=1000, special_tokens=["[UNK]"]))
    return tok


def span_inside(span, outer) -> bool:
    return outer[0] <= span[0] and span[1] <= outer[1]
