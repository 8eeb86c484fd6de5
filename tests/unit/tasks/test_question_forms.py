"""The ``question_form`` knob: a held-out paraphrase for a real-data stand-in (issue 24)."""

import pytest

from rhlens.tasks import generate
from rhlens.tasks.world import RELATIONS

BY_NAME = {r.name: r for r in RELATIONS}


def _question(example):
    return example.prompt.split("Question:")[-1].split("\n")[0].strip()


def test_mdqa_paraphrase_asks_with_the_relations_noun_phrase_and_keeps_the_fact():
    template = generate("mdqa", "realistic", 6, context_tokens=128, seed=3)
    para = generate("mdqa", "realistic", 6, context_tokens=128, seed=3, question_form="paraphrase")
    for t, p in zip(template, para):
        relation, subject = BY_NAME[p.meta["relation"]], p.meta["subject"]
        assert _question(t) == relation.question.format(s=subject)
        assert _question(p) == "What is " + relation.phrase.format(s=subject) + "?"
        assert _question(p) != _question(t)
        assert p.answer == t.answer and p.needle_texts == t.needle_texts and p.meta["question_form"] == "paraphrase"


def test_niah_paraphrase_keeps_the_needle():
    template = generate("niah", "fictional", 3, context_tokens=128, seed=2)
    para = generate("niah", "fictional", 3, context_tokens=128, seed=2, question_form="paraphrase")
    for t, p in zip(template, para):
        assert p.answer == t.answer and p.meta["needle"] == t.meta["needle"]
        assert _question(p).startswith("What is the ") and _question(p) != _question(t)


def test_template_is_the_default_and_an_unknown_form_is_named():
    plain = generate("mdqa", "fictional", 2, context_tokens=96, seed=1)
    asked = generate("mdqa", "fictional", 2, context_tokens=96, seed=1, question_form="template")
    assert [e.prompt for e in plain] == [e.prompt for e in asked]
    with pytest.raises(ValueError, match=r"question_form='reworded' is not one of \('template', 'paraphrase'\)"):
        generate("mdqa", "realistic", 1, context_tokens=96, question_form="reworded")
