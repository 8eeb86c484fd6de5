"""The two gates on the cases docs/concepts.md lists (issue 21 item 5): Wu's ROUGE-1 recall (the
default) and SQuAD exact match (``gate="exact"``)."""

import dataclasses

import pytest
import torch
from tests.unit.scoring.scoring_helpers import build_model, random_examples

from rhlens.encoding import EncodedExample
from rhlens.scoring import retrieval_scores
from rhlens.scoring.answer_spans import ScoredExample
from rhlens.scoring.rouge_gate import gate_counted

CASES = [  # answer, response, counted by "rouge", counted by "exact" (gate 0.5)
    ("New York City", "New York", True, False),
    ("1,000,000", "1,000", True, False),
    ("Paris", "not Paris", True, False),
    ("3f2a-91bc-77de-0a1e-5c4d", "3f2a-91bc-77de", True, False),
    ("1000", "1,000", False, True),
    ("US", "U.S.", False, True),
    ("Zurich", "Zürich", False, False),
    ("running", "runs", False, False),
    ("東京", "東京", True, True),
    ("Paris", "The answer is Paris.", True, False),
]


def item(answer: str) -> ScoredExample:
    enc = EncodedExample(tokens=[1], prompt_len=1, needle_spans=(), completion_span=(1, 1))
    return ScoredExample(index=0, enc=enc, answer_mask=torch.ones(1, dtype=torch.bool), references=(answer,))


@pytest.mark.parametrize(("answer", "response", "by_rouge", "by_exact"), CASES)
def test_documented_gate_cases(answer, response, by_rouge, by_exact):
    assert gate_counted([item(answer)], [response], 0.5, "rouge")[1].tolist() == [by_rouge]
    assert gate_counted([item(answer)], [response], 0.5, "exact")[1].tolist() == [by_exact]


def test_exact_gate_in_retrieval_scores():
    model = build_model()
    examples = random_examples((12, 20, 16), seed=3)
    decoded = retrieval_scores(model, examples, max_new_tokens=4, rouge_gate=None, progress=False)
    k = next(i for i, r in enumerate(decoded.trials.responses) if r)
    first = decoded.trials.responses[k]
    answers = [first + " pink", first, first.upper() + "."]  # exact fails the first, passes the others
    exs = [dataclasses.replace(examples[k], answer=a, aliases=(examples[k].answer,)) for a in answers]
    rouge = retrieval_scores(model, exs, max_new_tokens=4, progress=False)
    exact = retrieval_scores(model, exs, max_new_tokens=4, gate="exact", progress=False)
    assert exact.meta["gate"] == "exact" and rouge.meta["gate"] == "rouge"
    assert exact.counted.tolist() == [False, True, True]
    assert rouge.counted.tolist()[1:] == [True, True] and exact.trials.rouge.tolist() == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="gate must be one of"):
        retrieval_scores(model, examples, gate="bleu", progress=False)
