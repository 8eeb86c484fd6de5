"""rhlens.engine: one run path for every analyzer; identity interventions change nothing; bad
examples are refused (issue 10 items 6-7, issue 14 items 8 and 19)."""

import dataclasses

import pytest
import torch

from rhlens import engine
from rhlens.adapter import hook_name, hooks
from rhlens.evaluation import evaluate
from rhlens.decoding import greedy_decode
from rhlens.heads import HeadSet
from rhlens.interventions import block_attention, knockout, knockout_effect, patch_heads
from rhlens.interventions.head_sets import all_heads
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.scoring import retrieval_scores
from rhlens.tasks import Example

PROMPTS = [
    ("Ann lives in Rome . Bob lives in Oslo .\nQuestion: Where does Ann live ?\nAnswer:", "Rome"),
    ("Cat sat on the mat .\nQuestion: Where did the cat sit ?\nAnswer:", "mat"),
    ("The key blue maps to seven . The key red maps to nine .\nQuestion: What does red map to ?\nAnswer:", "nine"),
    ("Dan owns a red car .\nQuestion: What colour is the car ?\nAnswer:", "red"),
    ("Eve met Ann in Oslo . Eve lives in Rome .\nQuestion: Where does Eve live ?\nAnswer:", "Rome"),
]


def _examples():
    out = []
    for prompt, answer in PROMPTS:
        start = prompt.index(" " + answer) + 1
        out.append(Example(prompt, answer, ((start, start + len(answer)),), "niah", "real"))
    return out


@pytest.fixture(scope="module")
def tok():
    return word_level_tokenizer([p + " " + a for p, a in PROMPTS])


def _metric(prediction, example):
    return 0.0


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_identity_interventions_change_nothing(tok, dtype):
    """Knockout of no heads, a no-op block_attention and patching from an identical copy give the
    plain evaluate baseline bit for bit: the same engine, the same kernels (issue 10 item 7)."""
    model = tiny_llama(tokenizer=tok, seed=0, n_key_value_heads=2, dtype=dtype)
    copy = tiny_llama(tokenizer=tok, seed=0, n_key_value_heads=2, dtype=dtype)
    examples = _examples()
    kw = dict(max_new_tokens=6, batch_size=2, chunk_size=7, progress=False)
    base = evaluate(model, examples, metric=_metric, **kw)
    base_lp = evaluate(model, examples, metric="logprob", **kw)

    for metric, expected in ((_metric, base), ("logprob", base_lp)):
        with knockout(model, HeadSet(), "uniform"):
            got = evaluate(model, examples, metric=metric, **kw)
        assert torch.equal(got.per_example, expected.per_example) and got.predictions == expected.predictions
        with block_attention(model, [], []):  # no edge
            got = evaluate(model, examples, metric=metric, **kw)
        assert torch.equal(got.per_example, expected.per_example) and got.predictions == expected.predictions
        with block_attention(model, from_positions=[1, 2], to_positions=[4, 5]):  # future keys: already masked
            got = evaluate(model, examples, metric=metric, **kw)
        assert torch.equal(got.per_example, expected.per_example) and got.predictions == expected.predictions
        patched = patch_heads(copy, model, examples, all_heads(model), metric=metric, baseline=expected, **kw).patched
        assert torch.equal(patched.per_example, expected.per_example) and patched.predictions == expected.predictions


def test_interventions_on_head_outputs_keep_the_fused_kernels(tok, monkeypatch):
    """With hook_z hooked (zero knockout, patching), attention still runs through SDPA."""
    import torch.nn.functional as F

    model = tiny_llama(tokenizer=tok, seed=0)
    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    with knockout(model, ["L0H1", "L1H2"], "zero"):
        evaluate(model, _examples()[:2], metric="logprob", progress=False)
    assert len(calls) == model.cfg.n_layers  # one batch, one chunk, every layer fused


def test_decoding_rows_are_the_last_prompt_token_and_later(tok):
    model = tiny_llama(tokenizer=tok, seed=0)
    seen = []

    def spy(resid, hook):
        step = engine.current_step()
        seen.append((step.start, step.end, step.decoding(resid.shape[1]).tolist()))

    with hooks(model, [(hook_name("resid_pre", 0), spy)]):
        greedy_decode(model, [[1, 5, 6, 7, 8, 9], [1, 5, 6]], max_new_tokens=3, stop_ids=set(), chunk_size=2)
    # prefill of columns 0..4 in chunks of 2 (no decoding row), then one column per step
    assert [(s, e) for s, e, _ in seen] == [(0, 2), (2, 4), (4, 5), (5, 6), (6, 7), (7, 8)]
    assert all(not any(any(r) for r in rows) for _, e, rows in seen if e <= 5)
    assert all(rows == [[True], [True]] for _, e, rows in seen if e > 5)
    assert engine.current_step() is None


def test_length_sorted_batches_keep_the_callers_order(tok):
    model = tiny_llama(tokenizer=tok, seed=0)
    examples = _examples()
    one_by_one = [evaluate(model, [ex], metric=_metric, max_new_tokens=4, progress=False).predictions[0] for ex in examples]
    assert evaluate(model, examples, metric=_metric, max_new_tokens=4, batch_size=2, progress=False).predictions == one_by_one


def _analyzers(model, copy):
    return {
        "evaluate": lambda exs: evaluate(model, exs, max_new_tokens=2, progress=False),
        "retrieval_scores": lambda exs: retrieval_scores(model, exs, max_new_tokens=2, progress=False),
        "knockout_effect": lambda exs: knockout_effect(model, exs, ["L0H0"], metric="logprob", progress=False),
        "patch_heads": lambda exs: patch_heads(copy, model, exs, ["L0H0"], metric="logprob", progress=False),
    }


def test_dict_example_raises_type_error_naming_the_index(tok):
    model, copy = tiny_llama(tokenizer=tok, seed=0), tiny_llama(tokenizer=tok, seed=1)
    good = _examples()[0]
    for _name, run in _analyzers(model, copy).items():
        with pytest.raises(TypeError, match=r"examples\[1\] is a dict, not an rhlens.tasks.Example.*from_dict"):
            run([good, good.to_dict()])


def test_invalid_examples_are_rejected_not_clamped(tok):
    model, copy = tiny_llama(tokenizer=tok, seed=0), tiny_llama(tokenizer=tok, seed=1)
    good = _examples()[0]
    past_end = dataclasses.replace(good, needles=((len(good.prompt) - 4, len(good.prompt) + 30),))
    empty_answer = dataclasses.replace(good, answer="")
    for _name, run in _analyzers(model, copy).items():
        with pytest.raises(ValueError, match=r"example 1 \(task 'niah'\) is invalid: Example.needles\[0\].*outside the prompt"):
            run([good, past_end])
        with pytest.raises(ValueError, match=r"example 0 .*answer must be a non-empty string"):
            run([empty_answer])


@pytest.mark.realdata
def test_identity_interventions_on_stories260k_in_bfloat16(realdata):
    """Issue 10: on stories260K in bfloat16, patching into a copy and a no-op block_attention
    changed 8 of 40 greedy predictions (eager interventions against a fused baseline)."""
    import rhlens

    path = realdata / "models" / "stories260K"
    model = rhlens.load_hf_checkpoint(path, dtype=torch.bfloat16)
    copy = rhlens.load_hf_checkpoint(path, dtype=torch.bfloat16)
    names, things = ["Lily", "Tom", "Ben", "Sue", "Max", "Anna", "Tim", "Mia", "Sam", "Lucy"], ["ball", "cat", "dog", "toy", "box"]
    examples = []
    for i in range(40):
        name, thing = names[i % 10], things[i % 5]
        prompt = (f"Once upon a time, there was a little girl named {name}. {name} had a big red {thing}. "
                  f"One day, {name} went to the park with her {thing}. She saw a bird. The bird said hello to")
        s = prompt.index(name)
        examples.append(Example(prompt, name, ((s, s + len(name)),), "niah", "real"))
    kw = dict(metric=_metric, max_new_tokens=12, progress=False)
    base = evaluate(model, examples, **kw).predictions
    runs = {}
    with knockout(model, HeadSet()):
        runs["knockout of no heads"] = evaluate(model, examples, **kw).predictions
    with block_attention(model, from_positions=[1, 2], to_positions=[5, 6, 7]):
        runs["block_attention (masked edges)"] = evaluate(model, examples, **kw).predictions
    runs["patch from a copy"] = patch_heads(copy, model, examples, all_heads(model), **kw).patched.predictions
    changed = {name: sum(a != b for a, b in zip(base, preds)) for name, preds in runs.items()}
    assert changed == {name: 0 for name in runs}
    with knockout(model, ["L1H0", "L2H3", "L3H1", "L4H2"], "uniform"):
        assert evaluate(model, examples, **kw).predictions != base  # a real knockout does change them
