import pytest

from rhlens.tasks import (Example, best_subspan_em, citation_prf, default_metric, exact_match,
                          normalize_answer, parse_citations, rouge1_recall, token_f1)


def test_normalize_and_em():
    assert normalize_answer("  The Cat, a Hat!") == "cat hat"
    assert exact_match("the cat", ["Cat"]) == 1.0
    assert exact_match("cats", "cat") == 0.0


def test_token_f1_known_values():
    assert token_f1("the quick brown fox", ["quick fox"]) == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert token_f1("", [""]) == 1.0
    assert token_f1("dog", ["cat", "dog"]) == 1.0
    assert token_f1("zebra", ["cat"]) == 0.0


def test_best_subspan_em():
    assert best_subspan_em("I think it was Wilhelm Röntgen.", ["Wilhelm Röntgen"]) == 1.0
    assert best_subspan_em("Paris", ["Lyon", "Nice"]) == 0.0
    assert best_subspan_em("anything", [""]) == 0.0


def test_rouge1_recall_clipped():
    assert rouge1_recall("the the cat", "the cat") == pytest.approx(2 / 3)
    assert rouge1_recall("Sky Blue", "the sky is blue") == 1.0
    assert rouge1_recall("", "x") == 0.0


def test_citations():
    assert parse_citations("Docs [3], [1, 2] and [3].") == [3, 1, 2]
    assert parse_citations("none") == []
    assert citation_prf([1, 2], [2, 3]) == (0.5, 0.5, 0.5)
    assert citation_prf([], []) == (1.0, 1.0, 1.0)
    assert citation_prf([], [1]) == (0.0, 0.0, 0.0)
    assert citation_prf([1, 2, 3], [1]) == pytest.approx((1 / 3, 1.0, 0.5))


def test_default_metric_per_task():
    qa = Example("x Paris y\nAnswer:", "Paris", ((2, 7),), "mdqa", "real", aliases=("Paree",))
    assert default_metric("mdqa")(" It is Paree.", qa) == 1.0
    assert default_metric("niah")("Lyon", qa) == 0.0
    kv = Example('"k": "ab-cd"\nCorresponding value:', "ab-cd", ((6, 11),), "kv", "symbolic")
    assert default_metric("kv")(' "ab-cd"\nmore text', kv) == 1.0
    assert default_metric("kv")("ab-cd and more", kv) == 0.0
    sh = Example("Document [1] a\nAnswer:", "[1] [3]", ((13, 14),), "summhay", "real")
    assert default_metric("summhay")("[1]", sh) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no default metric"):
        default_metric("translation")
