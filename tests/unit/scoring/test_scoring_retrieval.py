"""retrieval_scores against the naive reference (no cache, full patterns, Python loops)."""

import dataclasses

import pytest
import torch
from tests.references.tl_loops import naive_retrieval_scores, wu_port_scores
from tests.unit.scoring.scoring_helpers import build_model, random_examples

from rhlens.adapter import count_hooks
from rhlens.heads import HeadSet
from rhlens.scoring import retrieval_scores
from rhlens.tasks.example import Example

LENGTHS = (20, 31, 25, 40, 17)


def assert_same(fast, slow):
    assert fast.trials.hits.equal(slow.trials.hits)
    assert fast.trials.responses == slow.trials.responses
    assert fast.counted.equal(slow.counted)
    torch.testing.assert_close(fast.per_example, slow.per_example)
    torch.testing.assert_close(fast.scores, slow.scores)


@pytest.fixture(scope="module", params=[None, 2, 1], ids=["mha", "gqa", "mqa"])
def model(request):
    kv = request.param
    return build_model(n_key_value_heads=kv) if kv else build_model()


@pytest.mark.parametrize("method", ["decode", "forced"])
@pytest.mark.parametrize("top_k", [1, 3])
def test_equals_naive_reference(model, method, top_k):
    examples = random_examples(LENGTHS, two_needles=top_k == 3)
    fast = retrieval_scores(model, examples, method=method, max_new_tokens=8, rouge_gate=None, top_k=top_k,
                            batch_size=3, chunk_size=7, progress=False)
    slow = naive_retrieval_scores(model, examples, method=method, max_new_tokens=8, rouge_gate=None, top_k=top_k)
    assert fast.trials.hits.sum() > 0  # the comparison is not vacuous
    assert_same(fast, slow)


def answered_by_the_model(model, examples, every=2):
    """Every ``every``-th example's answer replaced by the model's own greedy response, so that
    some examples pass the gate and the others do not."""
    decoded = retrieval_scores(model, examples, max_new_tokens=8, rouge_gate=None, progress=False)
    return [dataclasses.replace(ex, answer=r, aliases=(*ex.aliases, ex.answer)) if i % every == 0 and r else ex
            for i, (ex, r) in enumerate(zip(examples, decoded.trials.responses))]  # the alias keeps the span valid


@pytest.mark.parametrize("method", ["decode", "forced"])
def test_gate_equals_reference(model, method):
    examples = answered_by_the_model(model, random_examples(LENGTHS, seed=3))
    fast = retrieval_scores(model, examples, method=method, max_new_tokens=8, rouge_gate=0.3, progress=False, batch_size=2)
    slow = naive_retrieval_scores(model, examples, method=method, max_new_tokens=8, rouge_gate=0.3)
    assert 0 < fast.n_counted < len(examples)
    assert_same(fast, slow)
    torch.testing.assert_close(fast.trials.rouge, slow.trials.rouge)
    assert fast.counted.equal(fast.trials.rouge > 0.3)


def test_gate_takes_the_best_alias(model):
    examples = answered_by_the_model(model, random_examples(LENGTHS, seed=3), every=1)
    swapped = [dataclasses.replace(ex, answer="nothing like it", aliases=(ex.answer, *ex.aliases)) for ex in examples]
    plain = retrieval_scores(model, examples, max_new_tokens=8, rouge_gate=0.3, progress=False)
    aliased = retrieval_scores(model, swapped, max_new_tokens=8, rouge_gate=0.3, progress=False)
    assert plain.n_counted > 0
    assert aliased.trials.rouge.equal(plain.trials.rouge) and aliased.counted.equal(plain.counted)


def test_warns_when_no_example_passes_the_gate(model):
    # at most 3 of the answer's 8 words can be in a response: recall <= 0.375, under the gate
    examples = [dataclasses.replace(ex, answer=ex.answer + " zebra" * 5) for ex in random_examples(LENGTHS[:3])]
    with pytest.warns(UserWarning, match=r"none of the 3 examples passed the ROUGE gate.*example 0: .*ROUGE-1 0\.[0-3]\d against '\w+ \w+ \w+ zebra"):
        hs = retrieval_scores(model, examples, max_new_tokens=4, progress=False)
    assert hs.n_counted == 0 and hs.top(3) == HeadSet() and "no example passed the gate" in repr(hs)


@pytest.mark.parametrize("chunk_size", [None, 1, 5, 64])
@pytest.mark.parametrize("batch_size", [1, 5])
def test_chunking_and_batching_do_not_change_results(chunk_size, batch_size):
    model = build_model(n_key_value_heads=2)
    examples = random_examples(LENGTHS, seed=5)
    base = retrieval_scores(model, examples, max_new_tokens=6, rouge_gate=None, progress=False, batch_size=1, chunk_size=None)
    for method in ("decode", "forced"):
        ref = base if method == "decode" else retrieval_scores(
            model, examples, method="forced", rouge_gate=None, progress=False, batch_size=1, chunk_size=None)
        got = retrieval_scores(model, examples, method=method, max_new_tokens=6, rouge_gate=None, progress=False,
                               batch_size=batch_size, chunk_size=chunk_size)
        assert got.trials.hits.equal(ref.trials.hits) and got.trials.responses == ref.trials.responses


def test_wu_port_equals_naive_reference():
    model = build_model(n_key_value_heads=2)
    examples = random_examples(LENGTHS[:3], seed=7)
    for forced in (False, True):
        port = wu_port_scores(model, examples, forced=forced, max_new_tokens=8, rouge_gate=None)
        naive = naive_retrieval_scores(model, examples, method="forced" if forced else "decode", max_new_tokens=8, rouge_gate=None)
        assert_same(port, naive)


def test_decode_equals_forced_when_greedy_output_is_the_answer():
    """Build each example's answer from the model's own greedy output: teacher forcing then
    replays decoding exactly. (Where decoding ran to max_new_tokens or stopped at a newline,
    forced mode's extra EOS row cannot hit: EOS is no needle token.)"""
    model = build_model()
    examples = random_examples(LENGTHS, seed=11)
    steps = 6
    decoded = retrieval_scores(model, examples, max_new_tokens=steps, rouge_gate=None, progress=False)
    keep = [i for i, r in enumerate(decoded.trials.responses) if r]
    assert len(keep) >= 3
    gold = [dataclasses.replace(examples[i], answer=decoded.trials.responses[i], aliases=(examples[i].answer,)) for i in keep]
    decoded = retrieval_scores(model, [examples[i] for i in keep], max_new_tokens=steps, rouge_gate=None, progress=False)
    forced = retrieval_scores(model, gold, method="forced", rouge_gate=None, progress=False)
    assert decoded.trials.hits.sum() > 0
    assert forced.trials.hits.equal(decoded.trials.hits)
    torch.testing.assert_close(forced.scores, decoded.scores)


def test_result_fields_and_mode_restored():
    model = build_model(n_key_value_heads=2)
    model.train()
    examples = random_examples(LENGTHS[:3])
    scores = retrieval_scores(model, examples, max_new_tokens=4, rouge_gate=None, progress=False)
    assert model.training and count_hooks(model) == 0
    assert scores.scores.shape == (model.cfg.n_layers, model.cfg.n_heads)
    assert scores.per_example.shape == (3, model.cfg.n_layers, model.cfg.n_heads)
    assert scores.n_kv_heads == 2 and scores.by_kv_group().shape == (model.cfg.n_layers, 2)
    assert scores.meta["method"] == "decode" and scores.meta["top_k"] == 1
    assert bool((scores.per_example >= 0).all() and (scores.per_example <= 1).all())


def test_hooks_removed_when_the_model_raises(monkeypatch):
    model = build_model()
    import rhlens.engine as engine

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "forward", boom)
    with pytest.raises(RuntimeError, match="boom"):
        retrieval_scores(model, random_examples((10,)), progress=False)
    assert count_hooks(model) == 0


def test_errors_name_the_example():
    model = build_model(n_ctx=40)
    good, long_one = random_examples((10, 38))
    with pytest.raises(ValueError, match=r"retrieval_scores: example 1 has 39 tokens plus max_new_tokens=5 \(44 in all\) but the model's context is 40"):
        retrieval_scores(model, [good, long_one], max_new_tokens=5, progress=False)
    with pytest.raises(ValueError, match=r"example 1 has 39 tokens plus an answer of 4 \(43 in all\)"):
        retrieval_scores(model, [good, long_one], method="forced", progress=False)
    no_answer_span = Example(prompt="red blue", answer="gold", needles=((0, 3),), task="niah", variant="symbolic")
    assert no_answer_span.answer_spans == ()
    with pytest.raises(ValueError, match=r"Example 1 \(task 'niah'\) has no answer spans"):
        retrieval_scores(model, [good, no_answer_span], max_new_tokens=5, progress=False)
    bad_answer = Example(prompt="red blue  ", answer="red", needles=((0, 3),), answer_spans=((8, 10),), task="niah",
                         variant="symbolic")
    with pytest.raises(ValueError, match="Example 0 .*answer span 0 at characters 8:10 .*covers no prompt token"), \
            pytest.warns(UserWarning, match="shares no word with the answer"):
        retrieval_scores(model, [bad_answer], max_new_tokens=5, progress=False)
    bad_span = Example(prompt="red blue  ", answer="red", needles=((8, 10),), task="niah", variant="symbolic")
    with pytest.raises(ValueError, match="Example 0 .*needle 0 .*covers no prompt token"):
        retrieval_scores(model, [bad_span], max_new_tokens=5, progress=False)
    with pytest.raises(ValueError, match="method must be one of"):  # rhlens's own message, not the type checker's
        retrieval_scores(model, [good], method="greedy", progress=False)
    with pytest.raises(ValueError, match="top_k"):
        retrieval_scores(model, [good], top_k=0, progress=False)


def test_progress_bar_can_be_switched(capsys):
    model = build_model()
    examples = random_examples((10, 12))
    retrieval_scores(model, examples, max_new_tokens=2, rouge_gate=None, progress=False)
    assert "retrieval scores" not in capsys.readouterr().err
    retrieval_scores(model, examples, max_new_tokens=2, rouge_gate=None, progress=True, batch_size=1)
    assert "retrieval scores (decode)" in capsys.readouterr().err
