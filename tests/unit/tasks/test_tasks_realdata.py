"""Loads every record of the real samples in ../shared/realdata (skipped when absent)."""

import pytest

from rhlens.tasks import (load_lost_in_the_middle_kv, load_lost_in_the_middle_qa, load_musique,
                          load_summhay)
from rhlens.tasks.metrics import rouge1_recall

from tests.unit.tasks.tasks_helpers import check_evidence

pytestmark = pytest.mark.realdata


def _needles_hold_answers(exs):
    for ex in exs:
        ex.validate()
        texts = [t.lower() for t in ex.needle_texts]
        golds = [g.lower() for g in (ex.answer, *ex.aliases)]
        assert any(g in t or t in g for t in texts for g in golds), (ex.answer, texts)
        check_evidence(ex, generated=False)


def test_lost_in_the_middle_qa(realdata):
    exs = load_lost_in_the_middle_qa(realdata / "lost_in_the_middle" / "nq-open-oracle.first200.jsonl")
    assert len(exs) == 200 and exs.skipped == 0
    _needles_hold_answers(exs)


def test_lost_in_the_middle_kv(realdata):
    exs = load_lost_in_the_middle_kv(realdata / "lost_in_the_middle" / "kv-retrieval-75_keys.jsonl.gz")
    assert len(exs) == 500 and exs.skipped == 0
    assert all(ex.meta["n_pairs"] == 75 and ex.answer_texts == (ex.answer,) for ex in exs)
    for ex in exs:
        check_evidence(ex, generated=False)


def test_musique(realdata):
    with pytest.warns(UserWarning, match="1 example.*inside a longer word"):
        exs = load_musique(realdata / "musique" / "musique_ans_train_sample100.jsonl")
    # line 63's answer "America" occurs only inside "American": no answer span, skipped
    assert len(exs) == 99 and exs.skipped == 1 and "line 63" in exs.skip_reasons[0]
    assert all(len(ex.needles) == ex.meta["hops"] >= 2 for ex in exs)
    for ex in exs:
        check_evidence(ex, generated=False)


def test_summhay(realdata):
    exs = load_summhay(realdata / "summhay" / "topic_news1.json", errors="skip")
    # documents paraphrase insights; a few cannot be located at ROUGE-1 recall >= 0.5
    assert len(exs) + exs.skipped == 65
    assert len(exs) >= 60, exs.skip_reasons
    for ex in exs:
        check_evidence(ex, generated=False)
        for text in ex.needle_texts:
            assert rouge1_recall(ex.meta["insight"], text) >= 0.5
