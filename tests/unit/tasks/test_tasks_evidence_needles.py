"""Needles are the evidence, answer spans what is copied (issue 10 item 2, DESIGN.md):
for every generator task x variant and every loader fixture, each needle is a whole
sentence (a whole key-value pair for kv) that, for the QA tasks, holds an answer
span, and no needle is just the answer text.

Sentence and pair boundaries are judged by ``tasks_helpers.check_evidence`` with
their own rules (not rhlens's splitter), so a change to rhlens's sentence logic
cannot hide a bug.
"""

import json
from pathlib import Path

import pytest

from rhlens.tasks import (generate, studied_tasks, load_lost_in_the_middle_kv, load_lost_in_the_middle_qa,
                          load_musique, load_summhay)

from tests.unit.tasks.tasks_helpers import PAIRS, check_evidence

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "tasks"
@pytest.mark.parametrize("task,variant", PAIRS)
def test_generated_needles_are_evidence(task, variant):
    exs = generate(task, variant, n=3, context_tokens=160, seed=5)
    if task == "musique":
        exs += generate(task, variant, n=1, context_tokens=400, seed=5, hops=3)
    for ex in exs:
        check_evidence(ex, generated=True)
        if task == "summhay":  # each citing document's insight sentence
            assert set(ex.needle_texts) == {ex.meta["insight"]}
        if task == "niah":
            assert ex.needle_texts == (ex.meta["needle"],)


def test_loader_fixture_needles_are_evidence():
    exs = [*load_lost_in_the_middle_qa(FIX / "lim_qa.jsonl"),
           *load_lost_in_the_middle_kv(FIX / "lim_kv.jsonl"),
           *load_musique(FIX / "musique.jsonl"),
           *load_summhay(FIX / "summhay.json")]
    assert {e.task for e in exs} == set(studied_tasks())  # every real-data loader
    for ex in exs:
        check_evidence(ex, generated=False)


def test_qa_needle_falls_back_to_the_passage_when_the_sentence_is_the_answer(tmp_path):
    p = tmp_path / "qa.jsonl"
    rec = {"question": "who?", "answers": ["Maria Lopez"],
           "ctxs": [{"title": "A", "text": "Rain fell."},
                    {"title": "B", "text": "Painter:\nMaria Lopez.\nBorn 1900", "isgold": True}]}
    p.write_text(json.dumps(rec) + "\n")
    ex, = load_lost_in_the_middle_qa(p)
    assert ex.answer_texts == ("Maria Lopez",)
    assert ex.needle_texts == ("Painter:\nMaria Lopez.\nBorn 1900",)


def test_loader_sentences_survive_initials_and_decimals(tmp_path):
    p = tmp_path / "qa.jsonl"
    text = "It rained. Dr. G. Stanley Hall paid 3.5 dollars in Boston. He left."
    rec = {"question": "where?", "answers": ["Boston"],
           "ctxs": [{"title": "A", "text": text, "isgold": True}]}
    p.write_text(json.dumps(rec) + "\n")
    ex, = load_lost_in_the_middle_qa(p)
    assert ex.needle_texts == ("Dr. G. Stanley Hall paid 3.5 dollars in Boston.",)
