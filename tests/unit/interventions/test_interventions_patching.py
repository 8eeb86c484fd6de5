"""patch_heads, check_compatible, position rules."""

import pytest
import torch

from rhlens.adapter import count_hooks, record_weight_processing
from rhlens.adapter.native import model_state, set_model_state
from rhlens.encoding import EncodedExample
from rhlens.evaluation import evaluate
from rhlens.interventions import IncompatibleModelsError, check_compatible, patch_heads
from rhlens.interventions.head_sets import all_heads
from rhlens.interventions.patching import column_mask, position_mask
from rhlens.models import tiny_llama, word_level_tokenizer


def qk_twin(model, seed=7):
    """A copy of ``model`` whose query and key weights differ, everything else equal."""
    twin = tiny_llama(tokenizer=model.tokenizer, seed=0, **_overrides(model))
    state = model_state(model)  # TransformerLens names on either model class
    gen = torch.Generator().manual_seed(seed)
    for name in sorted(state):
        if name.rsplit(".", 1)[-1].lstrip("_") in ("W_Q", "W_K"):
            state[name] = torch.randn(state[name].shape, generator=gen) * 0.3
    set_model_state(twin, state)
    return twin


def _overrides(model):
    n_kv = model.cfg.n_key_value_heads
    return {} if n_kv is None else {"n_key_value_heads": n_kv}


@pytest.mark.parametrize("n_kv", [None, 2, 1])
def test_identical_source_changes_nothing(make_model, examples, n_kv):
    kw = {} if n_kv is None else {"n_key_value_heads": n_kv}
    target = make_model(**kw)
    source = make_model(**kw)
    res = patch_heads(source, target, examples, all_heads(target), metric="logprob", progress=False)
    assert torch.equal(res.patched.per_example, res.baseline.per_example)
    gen = patch_heads(source, target, examples, ["L0H1", "L1H3"], max_new_tokens=4, progress=False)
    assert gen.patched.predictions == gen.baseline.predictions and gen.delta == 0


@pytest.mark.parametrize("n_kv", [None, 2])
def test_patching_every_head_everywhere_gives_the_source(make_model, examples, n_kv):
    """Source and target differ only in W_Q/W_K: all z patched => the source's computation."""
    kw = {} if n_kv is None else {"n_key_value_heads": n_kv}
    source = make_model(**kw)
    target = qk_twin(source)
    src = evaluate(source, examples, metric="logprob", progress=False)
    res = patch_heads(source, target, examples, all_heads(target), metric="logprob", progress=False)
    assert (res.baseline.per_example - src.per_example).abs().max() > 1e-3  # the twins really differ
    torch.testing.assert_close(res.patched.per_example, src.per_example, rtol=0, atol=1e-5)
    # the same in generation: the patched target decodes what the source decodes
    src_gen = evaluate(source, examples, metric=lambda p, ex: 0.0, max_new_tokens=5, progress=False)
    gen = patch_heads(source, target, examples, all_heads(target), metric=lambda p, ex: 0.0, max_new_tokens=5, progress=False)
    assert gen.patched.predictions == src_gen.predictions
    # a subset of heads is not enough
    part = patch_heads(source, target, examples, ["L0H0"], metric="logprob", progress=False)
    assert (part.patched.per_example - src.per_example).abs().max() > 1e-3


def test_chunked_patching_equals_one_pass(make_model, examples):
    source = make_model()
    target = qk_twin(source)
    one = patch_heads(source, target, examples, ["L0H1", "L1H2"], metric="logprob", chunk_size=None, progress=False)
    chunked = patch_heads(source, target, examples, ["L0H1", "L1H2"], metric="logprob", chunk_size=4, progress=False)
    torch.testing.assert_close(chunked.patched.per_example, one.patched.per_example, rtol=1e-5, atol=1e-4)


def test_patch_from_an_identical_model_in_generation_matches_plain_greedy(make_model, examples):
    source, target = make_model(seed=2), make_model(seed=2)
    res = patch_heads(source, target, examples, all_heads(target), max_new_tokens=4, batch_size=3, chunk_size=5, progress=False)
    assert res.patched.predictions == res.baseline.predictions


def test_positions_restrict_what_is_patched(make_model, examples):
    source = make_model()
    target = qk_twin(source)
    heads = all_heads(target)
    src = evaluate(source, examples, metric="logprob", progress=False)
    prompt_only = patch_heads(source, target, examples, heads, positions="prompt", metric="logprob", progress=False)
    answer = patch_heads(source, target, examples, heads, positions="answer", metric="logprob", progress=False)
    needle = patch_heads(source, target, examples, heads, positions="needle", metric="logprob", progress=False)
    # every head's z at the reading positions fixes the output there: "prompt" (one-token answers
    # are read off the last prompt position) and "answer" both give the source's log-probs
    torch.testing.assert_close(prompt_only.patched.per_example, src.per_example, rtol=0, atol=1e-5)
    torch.testing.assert_close(answer.patched.per_example, src.per_example, rtol=0, atol=1e-5)
    # the needle alone moves the answer, but does not make it the source's
    assert (needle.patched.per_example - src.per_example).abs().max() > 1e-3
    assert (needle.patched.per_example - needle.baseline.per_example).abs().max() > 1e-3
    # a callable that selects every position equals "all"
    everything = patch_heads(
        source, target, examples, heads, positions=lambda enc, n: torch.ones(n, dtype=torch.bool),
        metric="logprob", progress=False,
    )
    torch.testing.assert_close(everything.patched.per_example, src.per_example, rtol=0, atol=1e-5)
    assert everything.positions == "<lambda>"


def test_position_rules():
    enc = EncodedExample(tokens=[1, 5, 6, 7, 8, 9, 10], prompt_len=5, needle_spans=((2, 4),), completion_span=(5, 7))
    assert position_mask("all", enc, 7).all()
    assert position_mask("prompt", enc, 7).tolist() == [True] * 5 + [False] * 2
    assert position_mask("answer", enc, 9).tolist() == [False] * 4 + [True] * 5
    assert position_mask("needle", enc, 7).nonzero()[:, 0].tolist() == [2, 3]
    cols = column_mask("needle", [enc, enc], torch.tensor([0, 2]), 9)
    assert cols[1].nonzero()[:, 0].tolist() == [4, 5]
    with pytest.raises(ValueError, match="Unknown positions 'middle'"):
        position_mask("middle", enc, 7)
    with pytest.raises(ValueError, match="shape"):
        position_mask(lambda e, n: torch.ones(3, dtype=torch.bool), enc, 7)


def test_check_compatible_lists_every_difference(tok):
    a = tiny_llama(tokenizer=tok)
    other_tok = word_level_tokenizer(["completely different words"])
    b = tiny_llama(tokenizer=other_tok, n_layers=3, n_key_value_heads=2, d_vocab=len(tok))
    record_weight_processing(b, fold_value_biases=True)  # changes hook_z (fold_ln alone does not: issue 14 item 21)
    with pytest.raises(IncompatibleModelsError) as err:
        check_compatible(a, b)
    msg = str(err.value)
    for needle in ("n_layers: 2 != 3", "n_kv_heads: 4 != 2", "tokenizer vocabulary", "weight processing fold_value_biases"):
        assert needle in msg
    check_compatible(a, tiny_llama(tokenizer=tok, seed=5))


def test_patch_heads_refuses_incompatible_models(tok, examples):
    with pytest.raises(IncompatibleModelsError, match="n_heads"):
        patch_heads(tiny_llama(tokenizer=tok), tiny_llama(tokenizer=tok, n_heads=2, d_head=32), examples, ["L0H0"])


def test_hooks_removed_after_patching_and_after_errors(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    patch_heads(source, target, examples, ["L0H0"], metric="logprob", progress=False)
    assert count_hooks(source) == count_hooks(target) == 0

    calls = []

    def failing(prediction, example):
        calls.append(prediction)
        if len(calls) > len(examples):  # the original scores fine, the patched run fails
            raise RuntimeError("metric failed")
        return 0.0

    with pytest.raises(RuntimeError, match="metric failed"):
        patch_heads(source, target, examples, ["L0H0"], metric=failing, max_new_tokens=2, progress=False)
    assert count_hooks(source) == count_hooks(target) == 0
    assert source.training is False and target.training is False


def test_restores_training_mode(make_model, examples):
    source, target = make_model(seed=1), make_model(seed=2)
    source.train()
    target.train()
    patch_heads(source, target, examples, ["L1H1"], metric="logprob", progress=False)
    assert source.training and target.training


def test_patch_result_dataframe(make_model, examples):
    pytest.importorskip("pandas")
    res = patch_heads(make_model(seed=1), make_model(seed=2), examples, ["L1H1"], metric="logprob", progress=False)
    df = res.to_dataframe()
    assert list(df.columns) == ["example", "baseline", "patched", "delta"]
    assert df["delta"].sum() == pytest.approx(res.delta * len(examples), abs=1e-4)
