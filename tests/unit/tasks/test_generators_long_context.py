"""Generators at the paper's long contexts (issue 22 item 20): the short entity lists (cities
first) ran out and every long example failed with "could not sample a fresh 'city'"; now a
document title or haystack subject falls back to another kind, and subjects return only once
every fresh one is used."""

import pytest

from rhlens.tasks import generate
from rhlens.tasks.spans import find_word


@pytest.mark.parametrize("task, context", [("niah", 8192), ("mdqa", 32768), ("musique", 32768)])
def test_realistic_examples_at_long_contexts(task, context):
    (ex,) = generate(task, "realistic", 1, context_tokens=context, seed=0)
    assert ex.validate() and len(ex.prompt.split()) > context // 2
    for s, e in ex.answer_spans:
        assert find_word(ex.prompt[s:e], ex.answer) is not None or ex.prompt[s:e] == ex.answer
