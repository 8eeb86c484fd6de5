"""Tests aimed at two injected bugs that once survived every scoring, knockout and stopping test
(issue 21 item 4); ``scripts/mutation_check.py`` applies them and expects these to fail.

- the decoding step that produces the stop token is scored (Wu's loop counts its hits before it
  breaks);
- the ROUGE gate is strict: an example counts when its recall is *above* the gate (Wu:
  ``recall * 100 > 50``), so a recall equal to the gate does not count.
"""

import pytest
import torch
from tests.references import wu_rule
from tests.references.tl_loops import naive_retrieval_scores
from tests.unit.scoring.scoring_helpers import build_model, random_examples

from rhlens.encoding import EncodedExample
from rhlens.scoring import retrieval_scores
from rhlens.scoring.answer_spans import ScoredExample
from rhlens.scoring.rouge_gate import gate_counted


def _stop_on_a_hit(model, examples, monkeypatch):
    """A token id that, made the only stop token, ends some row at a step where a head hits:
    found by decoding 1, 2, ... steps with no stop token and diffing the hit counts."""
    monkeypatch.setattr("rhlens.scoring.detector.default_stop_ids", lambda tok: set())
    before = None
    for steps in range(1, 9):
        got = retrieval_scores(model, examples, max_new_tokens=steps, rouge_gate=None, progress=False)
        words = [r.split() for r in got.trials.responses]
        if before is not None:
            for b, inc in enumerate((got.trials.hits - before).sum(dim=(1, 2)).tolist()):
                if inc > 0 and words[b][-1] not in words[b][:-1]:
                    return model.tokenizer.convert_tokens_to_ids(words[b][-1]), b, inc
        before = got.trials.hits
    raise AssertionError("no decoding step with a hit")


def test_the_step_that_stops_is_scored(monkeypatch):
    """The row that stops on a token a head copied keeps that step's hits, as in the reference
    (Wu's loop scores the step, then breaks)."""
    model = build_model()
    examples = random_examples((12, 20, 27, 16, 23, 30), seed=3)
    stop, row, inc = _stop_on_a_hit(model, examples, monkeypatch)
    monkeypatch.setattr("rhlens.scoring.detector.default_stop_ids", lambda tok: {stop})
    monkeypatch.setattr(wu_rule, "stop_ids", lambda tok: {stop})
    fast = retrieval_scores(model, examples, max_new_tokens=8, rouge_gate=None, batch_size=4, progress=False)
    slow = naive_retrieval_scores(model, examples, max_new_tokens=8, rouge_gate=None)
    assert fast.trials.responses == slow.trials.responses
    assert fast.trials.hits.equal(slow.trials.hits)
    assert int(fast.trials.hits[row].sum()) >= inc  # the stop step's hits are in


@pytest.mark.parametrize(("answer", "response", "gate", "counts"), [
    ("New York", "New Jersey", 0.5, False),  # recall 0.5 is not above 0.5
    ("New York", "New Jersey", 0.49, True),
    ("a b c d", "a b", 0.5, False),
    ("a b c d", "a b c", 0.5, True),
    ("Paris", "Paris", 1.0, False),  # nothing is above a gate of 1
    ("Paris", "paris", 0.99, True),
])
def test_the_gate_is_strictly_above(answer, response, gate, counts):
    enc = EncodedExample(tokens=[1], prompt_len=1, needle_spans=(), completion_span=(1, 1))
    item = ScoredExample(index=0, enc=enc, answer_mask=torch.ones(1, dtype=torch.bool), references=(answer,))
    rouge, counted = gate_counted([item], [response], gate)
    assert float(rouge[0]) == pytest.approx(wu_rule.rouge1_recall(answer, response))
    assert counted.tolist() == [counts]
    assert gate_counted([item], [response], None)[1].tolist() == [True]
    assert torch.is_tensor(rouge)
