"""A perfect response passes Wu's gate, and the answer spans hold exactly what it copies
(issue 10 item 2), for every generator task x variant and every real-data loader.

The gate and the tokenization are written here (lowercased ``\\w+`` words, clipped
counts) rather than imported, so a change to rhlens's metrics cannot hide a bug.
"""

import collections
import json
import re

import pytest

from rhlens.tasks import (generate, load_lost_in_the_middle_kv, load_lost_in_the_middle_qa,
                          load_musique, load_summhay)

from tests.unit.tasks.tasks_helpers import PAIRS, QA_TASKS


def words(text: str) -> list:
    return re.findall(r"\w+", text.lower())


def rouge1_recall(reference: str, response: str) -> float:
    ref, got = collections.Counter(words(reference)), collections.Counter(words(response))
    return sum((ref & got).values()) / max(1, sum(ref.values()))


def squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def check_answer_spans(ex) -> None:
    """Everything a perfect copying response needs from ``ex`` (asserts)."""
    ex.validate()
    assert ex.answer_spans, f"no answer span: {ex.answer!r} in {ex.meta}"
    assert len(set(ex.answer_spans)) == len(ex.answer_spans)
    perfect = ex.completion  # the gold answer as the model would generate it
    assert rouge1_recall(ex.answer, perfect) > 0.5
    copied = " ".join(ex.answer_texts)  # what a head attending to the spans copies
    assert rouge1_recall(ex.answer, copied) > 0.5, (ex.answer, copied)
    assert words(copied) == words(ex.answer), (ex.answer, copied)
    if ex.task.startswith("summhay"):
        cited = re.findall(r"\[(\d+)\]", ex.answer)
        assert list(ex.answer_texts) == [f"[{i}]" for i in cited]
        for _cited_id, (s, _e) in zip(cited, ex.answer_spans, strict=True):
            assert ex.prompt[s - len("Document "):s] == "Document ", "not a document header"
    else:
        assert ex.task in QA_TASKS
        (s, e), = ex.answer_spans  # one copy source, never duplicates
        assert squash(ex.prompt[s:e]) == squash(ex.answer)
        assert any(a <= s and e <= b for a, b in ex.needles), "answer span outside the needles"


@pytest.mark.parametrize("task,variant", PAIRS)
def test_every_generator_perfect_response_passes_the_gate(task, variant):
    for context_tokens in (64, 512):
        for ex in generate(task, variant, n=4, context_tokens=context_tokens, seed=11):
            check_answer_spans(ex)


def test_niah_grid_and_custom_needles_have_answer_spans():
    grid = [*generate("niah", "fictional", n=2, context_tokens=128, seed=0, position=0.0),
            *generate("niah", "symbolic", n=1, context_tokens=128, position=1.0,
                      needle=("The best thing to do in San Francisco is eat a sandwich.",
                              "What is the best thing to do in San Francisco?",
                              "eat a sandwich"))]
    for ex in grid:
        check_answer_spans(ex)
    assert grid[-1].answer_texts == ("eat a sandwich",)


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


NQ = [
    {"question": "who wrote the quiet harbour", "answers": ["Ana  Costa", "A. Costa"],
     "ctxs": [{"title": "Rain", "text": "Rain fell.", "hasanswer": False},
              {"title": "The Quiet Harbour", "text": "A novel by ana\ncosta, 1990.",
               "hasanswer": True, "isgold": True}]},
    {"question": "when was the bank founded", "answers": ["in 1901", "1901"],
     "ctxs": [{"title": "Bank", "text": "It was founded in 1901 by Erik Berg.", "isgold": True}]},
]
KV = [{"ordered_kv_records": [["k1", "v-1"], ["k2", "v-2"], ["k3", "v-3"]],
       "key": "k2", "value": "v-2"}]
MUSIQUE = [
    {"id": "a", "question": "Where was the author of The Quiet Harbour born?", "answer": "Porto",
     "answer_aliases": ["Oporto"], "answerable": True,
     "paragraphs": [{"idx": 0, "title": "Q", "paragraph_text": "The Quiet Harbour is by Ana Costa."},
                    {"idx": 1, "title": "Ana Costa", "paragraph_text": "Ana Costa was born in Oporto."},
                    {"idx": 2, "title": "Porto", "paragraph_text": "Porto is a city."}],
     "question_decomposition": [{"answer": "Ana Costa", "paragraph_support_idx": 0},
                                {"answer": "Oporto", "paragraph_support_idx": 1}]},
    {"id": "b", "question": "In which country is the birthplace of Erik Berg?", "answer": "Norway",
     "answer_aliases": [], "answerable": True,
     "paragraphs": [{"idx": 5, "title": "Erik Berg", "paragraph_text": "Erik Berg was born in Bergen."},
                    {"idx": 6, "title": "Bergen", "paragraph_text": "Bergen is a city in Norway. "
                                                                   "Norway has fjords."}],
     "question_decomposition": [{"answer": "Bergen", "paragraph_support_idx": 5},
                                {"answer": "Norway", "paragraph_support_idx": 6}]},
]
SUMMHAY = {"topic_id": "t", "subtopics": [{"subtopic_id": "s", "insights": [
    {"insight_id": "I1", "insight": "Tram fares rose by ten percent."},
    {"insight_id": "I2", "insight": "Drivers went on strike."}]}],
    "documents": [
        {"document_id": "d1", "document_text": "Tram fares rose by ten percent. Rain.",
         "insights_included": ["I1"]},
        {"document_id": "d2", "document_text": "Parks were busy.", "insights_included": []},
        {"document_id": "d3", "document_text": "Sadly, tram fares rose by ten percent again. Drivers went on strike.",
         "insights_included": ["I1", "I2"]},
        {"document_id": "d4", "document_text": "Drivers went on a strike.",
         "insights_included": ["I2"]}]}


def test_every_loader_perfect_response_passes_the_gate(tmp_path):
    loaded = {
        "qa": load_lost_in_the_middle_qa(write_jsonl(tmp_path / "nq.jsonl", NQ)),
        "kv": load_lost_in_the_middle_kv(write_jsonl(tmp_path / "kv.jsonl", KV)),
        "musique": load_musique(write_jsonl(tmp_path / "musique.jsonl", MUSIQUE)),
        "summhay": load_summhay(write_jsonl(tmp_path / "summhay.jsonl", [SUMMHAY])),
    }
    assert {k: len(v) for k, v in loaded.items()} == {"qa": 2, "kv": 1, "musique": 2, "summhay": 2}
    for exs in loaded.values():
        for ex in exs:
            check_answer_spans(ex)
    assert loaded["qa"][0].answer_texts == ("ana\ncosta",)
    assert loaded["qa"][1].answer_texts == ("in 1901",)
    assert loaded["kv"][0].answer_texts == ("v-2",)
    assert [e.answer_texts for e in loaded["musique"]] == [("Oporto",), ("Norway",)]
    assert [e.answer for e in loaded["summhay"]] == ["[1] [3]", "[3] [4]"]


@pytest.mark.realdata
def test_real_loaders_perfect_responses_pass_the_gate(realdata):
    lim = realdata / "lost_in_the_middle"
    sets = {
        "qa": load_lost_in_the_middle_qa(lim / "nq-open-oracle.first200.jsonl"),
        "kv": load_lost_in_the_middle_kv(lim / "kv-retrieval-75_keys.jsonl.gz", n_pairs=10),
        "summhay": load_summhay(realdata / "summhay" / "topic_news1.json", errors="skip"),
    }
    with pytest.warns(UserWarning, match="inside a longer word"):
        sets["musique"] = load_musique(realdata / "musique" / "musique_ans_train_sample100.jsonl")
    for exs in sets.values():
        for ex in exs:
            check_answer_spans(ex)
    assert {k: len(v) for k, v in sets.items()} == {"qa": 200, "kv": 500, "musique": 99,
                                                    "summhay": 63}
