"""Question, query region and document spans of every task's prompts (rhlens.tasks.regions)."""

import pytest

import rhlens
from rhlens.tasks.example import Example
from rhlens.tasks.regions import null_prompt, regions


@pytest.mark.parametrize("task", rhlens.TASKS)
@pytest.mark.parametrize("variant", ["realistic", "symbolic"])
def test_every_generator(task, variant):
    for ex in rhlens.generate(task, variant, n=3, seed=2, context_tokens=200):
        r = regions(ex)
        p = ex.prompt
        assert r.query[1] == len(p) and r.query[0] < r.question[0] < r.question[1] < len(p)
        assert p[r.query[0] :].startswith(("Question: ", "Key: "))
        assert all(e <= r.query[0] for _, e in r.documents)  # every document before the question
        assert r.gold and all(0 <= g < len(r.documents) for g in r.gold)
        for g in r.gold:  # a gold document holds a needle
            s, e = r.documents[g]
            assert any(a < e and s < b for a, b in ex.needles)
        assert len(r.documents) >= 2
        nul = null_prompt(ex)
        assert nul[: r.question[0]] == p[: r.question[0]] and nul[r.question[0] :].startswith("N/A")


def test_loaded_prompt_documents_from_headers():
    """No meta['doc_spans'] (the real-data loaders): the ``Document [i]`` lines are the documents."""
    p = ("Answer the question using only the documents below.\n\nDocument [1](Title: A) Ann is 3.\n"
         "Document [2](Title: B) Bo lives in Rome.\n\nQuestion: Where does Bo live?\nAnswer:")
    ex = Example(p, "Rome", ((p.index("Bo lives"), p.index("Rome") + 4),), "mdqa", "real")
    r = regions(ex)
    assert [p[a:b] for a, b in r.documents] == ["Document [1](Title: A) Ann is 3.", "Document [2](Title: B) Bo lives in Rome."]
    assert r.gold == (1,)


def test_hand_built_prompt_needs_question_span():
    ex = Example("Lily had a ball. What did Lily have?", "a ball", ((0, 16),), "niah", "real")
    with pytest.raises(ValueError, match="meta\\['question_span'\\]"):
        regions(ex)
    given = Example(ex.prompt, ex.answer, ex.needles, "niah", "real", meta={"question_span": [17, 36]})
    r = regions(given)
    assert given.prompt[slice(*r.question)] == "What did Lily have?" and r.gold == (0,)
