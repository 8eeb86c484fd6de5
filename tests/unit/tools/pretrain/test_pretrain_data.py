"""Pretraining data: induction documents, QA forms, stage mixtures."""

import pytest

from rhlens.tools.pretrain.data import induction_documents, qa_examples, stage_examples
from rhlens.tasks import pretokenize, vocabulary


def test_induction_documents_repeat_spans_and_stay_in_vocabulary():
    vocab = set(vocabulary())
    docs = induction_documents(20, context_tokens=80, seed=3)
    for doc in docs:
        words = (doc.prompt + doc.completion).split()
        assert 68 <= len(words) <= 80
        assert set(pretokenize(doc.prompt + doc.completion)) <= vocab
        # some span of 3 words occurs twice
        trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
        assert len(set(trigrams)) < len(trigrams)


def test_induction_documents_are_deterministic_by_seed():
    a = induction_documents(3, context_tokens=40, seed=1)
    b = induction_documents(3, context_tokens=40, seed=1)
    c = induction_documents(3, context_tokens=40, seed=2)
    assert a == b
    assert a != c


def test_whole_text_examples_put_the_loss_on_everything_but_the_first_word():
    doc = induction_documents(1, context_tokens=30, seed=0)[0]
    first = doc.prompt
    assert " " not in first
    assert doc.completion.startswith(" ")
    assert doc.prompt[doc.needles[0][0] : doc.needles[0][1]] == first


def test_qa_examples_cycle_over_tasks_and_can_be_whole_text():
    qa = qa_examples(10, context_tokens=64, seed=0, tasks=("kv", "mdqa"))
    assert {e.task for e in qa} == {"kv", "mdqa"}
    lm = qa_examples(4, context_tokens=64, seed=0, tasks=("kv",), whole_text=True)
    assert all(e.task == "lm" and e.meta["kind"] == "lm" for e in lm)


def test_stage_examples_mix_proportions():
    ex = stage_examples(n=40, context_tokens=64, mix={"induction": 0.5, "lm": 0.25, "qa": 0.25}, seed=0)
    kinds = [e.meta.get("kind", "qa") for e in ex]
    assert len(ex) == 40
    assert kinds.count("induction") == 20 and kinds.count("lm") == 10 and kinds.count("qa") == 10


def test_stage_examples_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="Unknown data kinds"):
        stage_examples(n=4, context_tokens=64, mix={"books": 1.0})
