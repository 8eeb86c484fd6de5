"""The word-level world: pre-tokenization, token counting and the closed vocabulary.

``WORD_PATTERN`` splits text into words, single punctuation characters and
newlines. :func:`vocabulary` lists every token any generator can write, so a
word-level tokenizer built from it covers all synthetic examples.

>>> pretokenize("Ann's code is ba1-ke4.\\nDone")
['Ann', "'", 's', 'code', 'is', 'ba1', '-', 'ke4', '.', '\\n', 'Done']
>>> count_tokens("The sky is blue.")
5
>>> "Lisbon" in vocabulary() and "\\n" in vocabulary()
True
"""

import functools
import re
import string

WORD_PATTERN = r"\w+|[^\w\s]|\n"
_WORD_RE = re.compile(WORD_PATTERN)

# Document indices and citation ids the generators may write ("Document [i]").
MAX_DOCS = 512


def pretokenize(text: str) -> list:
    """Split ``text`` with :data:`WORD_PATTERN`."""
    return _WORD_RE.findall(text)


def count_tokens(text: str, tokenizer=None) -> int:
    """Number of tokens in ``text``.

    ``tokenizer`` is None (word-level :func:`pretokenize`), or any object whose
    ``encode(text)`` returns a list of ids or an object with ``.ids`` (a
    ``tokenizers.Tokenizer`` or a ``transformers`` tokenizer). Special tokens
    are not added when the tokenizer accepts ``add_special_tokens=False``.
    """
    if tokenizer is None:
        return len(_WORD_RE.findall(text))
    try:
        ids = tokenizer.encode(text, add_special_tokens=False)
    except TypeError:
        ids = tokenizer.encode(text)
    return len(getattr(ids, "ids", ids))


def token_counter(tokenizer=None):
    """A one-argument counting function for ``tokenizer`` (see :func:`count_tokens`)."""
    if tokenizer is None:
        return lambda text: len(_WORD_RE.findall(text))
    return functools.partial(count_tokens, tokenizer=tokenizer)


def tokenizer_name(tokenizer) -> str:
    if tokenizer is None:
        return "word"
    return str(getattr(tokenizer, "name_or_path", None) or type(tokenizer).__name__)


def _literals(template: str):
    for literal, _field, _spec, _conv in string.Formatter().parse(template):
        if literal:
            yield literal


@functools.lru_cache(maxsize=1)
def _vocabulary() -> tuple:
    from rhlens.tasks import templates, wordlists, world

    texts = []
    for name in dir(wordlists):
        value = getattr(wordlists, name)
        if name.isupper() and isinstance(value, list):
            texts.extend(value)
    texts.extend(str(i) for i in range(MAX_DOCS + 1))
    texts.extend(["a", "an", "-"])  # articles; the joiner of symbolic strings
    for rel in world.RELATIONS + world.SYMBOLIC_RELATIONS:
        for t in (rel.fact, rel.question, rel.phrase):
            texts.extend(_literals(t))
    for group in world.BACKGROUND_TEMPLATES.values():
        for t in group:
            texts.extend(_literals(t))
    for t in world.GENERAL_TEMPLATES:
        texts.extend(_literals(t))
    for t in templates.LITERALS:  # plain text, possibly holding {name} slots or JSON braces
        texts.append(re.sub(r"\{\w+\}", " ", t))
    tokens = set()
    for t in texts:
        tokens.update(pretokenize(t))
    return tuple(sorted(tokens))


def vocabulary() -> list:
    """Sorted list of every token the synthetic generators can write."""
    return list(_vocabulary())
