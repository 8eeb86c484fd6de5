"""knockout (zero / mean / uniform), random_heads, knockout_effect."""

import pytest
import torch

from rhlens.adapter import count_hooks, hook_name, hooks
from rhlens.encoding import pad_left
from rhlens.generation import prefill
from rhlens.heads import Head, HeadSet
from rhlens.interventions import knockout, knockout_effect, mean_head_outputs, random_heads


def capture(model, kind, layer, tokens, mask=None):
    seen = {}
    from rhlens.adapter import forward

    with torch.inference_mode(), hooks(model, [(hook_name(kind, layer), lambda t, hook: seen.setdefault("t", t.clone()))]):
        forward(model, tokens, attention_mask=mask)
    return seen["t"]


def test_zero_equals_removing_the_heads_output_weights(make_model, tok, logits_of):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome .")
    with knockout(model, ["L1H2"], "zero"):
        knocked = logits_of(model, tokens)
    twin = make_model()
    with torch.no_grad():
        twin.blocks[1].attn.W_O[2] = 0
    torch.testing.assert_close(knocked, logits_of(twin, tokens), rtol=0, atol=1e-6)


def test_zero_only_touches_the_chosen_query_head_under_gqa(make_model):
    model = make_model(n_key_value_heads=2)  # heads 0 and 1 share a key/value head
    tokens = model.to_tokens("Cat sat on the mat .")
    before = capture(model, "z", 0, tokens)
    with knockout(model, [Head(0, 0)], "zero"):
        after = capture(model, "z", 0, tokens)
    assert after[:, :, 0].abs().max() == 0
    torch.testing.assert_close(after[:, :, 1:], before[:, :, 1:])


def test_mean_replaces_z_with_reference_mean(make_model, examples):
    model = make_model()
    means = mean_head_outputs(model, examples, [1])
    tokens = model.to_tokens("Dan owns a red car .")
    with knockout(model, ["L1H3"], "mean", reference=examples):
        z = capture(model, "z", 1, tokens)
    torch.testing.assert_close(z[0, :, 3], means[1][3].expand(z.shape[1], -1))
    # the mean is over real positions only: padding does not dilute it
    single = [mean_head_outputs(model, [ex], [1])[1] for ex in examples]
    lengths = torch.tensor([len(model.to_tokens(ex.prompt)[0]) for ex in examples], dtype=torch.float32)
    weighted = sum(m * n for m, n in zip(single, lengths)) / lengths.sum()
    torch.testing.assert_close(means[1], weighted, rtol=1e-5, atol=1e-6)


def test_mean_needs_reference(make_model):
    with pytest.raises(ValueError, match="reference"):
        with knockout(make_model(), ["L0H0"], "mean"):
            pass


def test_uniform_attends_uniformly_over_the_unpadded_prefix(make_model, tok):
    model = make_model()
    batch = pad_left([tok("Ann lives in Rome .")["input_ids"], tok("Cat sat")["input_ids"]], tok.pad_token_id)
    with knockout(model, ["L0H1"], "uniform"):
        pattern = capture(model, "pattern", 0, batch.tokens, batch.attention_mask)
    for b in range(2):
        off = int(batch.offsets[b])
        width = batch.tokens.shape[1]
        for q in range(off, width):
            row = pattern[b, 1, q]
            expected = torch.zeros(width)
            expected[off : q + 1] = 1.0 / (q + 1 - off)
            torch.testing.assert_close(row, expected)
    # other heads keep their learned pattern
    intact = capture(model, "pattern", 0, batch.tokens, batch.attention_mask)
    torch.testing.assert_close(pattern[:, [0, 2, 3]], intact[:, [0, 2, 3]])


@pytest.mark.parametrize("mode", ["zero", "uniform"])
def test_knockout_is_the_same_through_the_kv_cache(make_model, tok, logits_of, mode):
    """Chunked prefill (query rows attending to cached + current keys) equals one full pass."""
    model = make_model(n_key_value_heads=2)
    batch = pad_left(
        [tok("Ann lives in Rome . Bob lives in Oslo .")["input_ids"], tok("Cat sat on the mat .")["input_ids"]],
        tok.pad_token_id,
    )
    heads = ["L0H1", "L1H0", "L1H3"]
    with knockout(model, heads, mode):
        full = logits_of(model, batch.tokens, batch.attention_mask)[:, -1]
        with torch.inference_mode():
            chunked, _ = prefill(model, batch.tokens, batch.attention_mask, chunk_size=3)
    torch.testing.assert_close(chunked, full, rtol=1e-4, atol=1e-4)
    assert (full - logits_of(model, batch.tokens, batch.attention_mask)[:, -1]).abs().max() > 1e-3


@pytest.mark.parametrize("mode", ["zero", "mean", "uniform"])
def test_hooks_removed_on_exit_and_on_error(make_model, examples, mode):
    model = make_model()
    ref = examples if mode == "mean" else None
    with knockout(model, ["L0H0", "L1H1"], mode, reference=ref):
        assert count_hooks(model) > 0
    assert count_hooks(model) == 0
    with pytest.raises(RuntimeError, match="boom"):
        with knockout(model, ["L0H0", "L1H1"], mode, reference=ref):
            raise RuntimeError("boom")
    assert count_hooks(model) == 0


def test_bad_heads_and_modes_are_named(make_model):
    model = make_model()
    with pytest.raises(ValueError, match="L5H0.*2 layers"):
        with knockout(model, ["L5H0"]):
            pass
    with pytest.raises(ValueError, match="Unknown knockout mode 'ones'"):
        with knockout(model, ["L0H0"], "ones"):
            pass


def test_empty_head_set_changes_nothing(make_model, logits_of):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome .")
    with knockout(model, HeadSet()):
        knocked = logits_of(model, tokens)
    assert torch.equal(knocked, logits_of(model, tokens))


def test_random_heads(make_model):
    model = make_model(n_layers=3)
    exclude = HeadSet(["L0H0", "L1H1", "L2H2"])
    drawn = random_heads(model, 5, exclude=exclude, seed=3)
    assert len(drawn) == 5 and not (drawn & exclude)
    assert drawn == random_heads(model, 5, exclude=exclude, seed=3)
    with pytest.raises(ValueError, match="only 9 remain"):
        random_heads(model, 10, exclude=exclude)


def test_knockout_effect_logprob(make_model, examples):
    model = make_model()
    effect = knockout_effect(model, examples, ["L0H0", "L1H2"], metric="logprob", progress=False)
    assert effect.delta == pytest.approx(effect.knocked.score - effect.baseline.score)
    assert effect.per_example_delta.shape == (len(examples),)
    assert effect.delta != 0
    none = knockout_effect(model, examples, [], metric="logprob", baseline=effect.baseline, progress=False)
    assert none.delta == 0
    assert count_hooks(model) == 0


def test_knockout_effect_text_metric_and_dataframe(make_model, examples):
    pytest.importorskip("pandas")
    model = make_model()
    effect = knockout_effect(model, examples, ["L1H0"], max_new_tokens=3, progress=False)
    df = effect.to_dataframe()
    assert list(df.columns) == ["example", "baseline", "knocked", "delta"] and len(df) == len(examples)
    assert effect.knocked.predictions is not None
