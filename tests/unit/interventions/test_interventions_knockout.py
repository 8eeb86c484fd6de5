"""knockout (zero / mean / uniform), random_heads, knockout_effect."""

import contextlib

import pytest
import torch
import transformers
from transformers import DynamicCache
from transformers.models.llama import modeling_llama

import rhlens
from rhlens.adapter import count_hooks, forward, hook_name, hooks
from rhlens.encoding import pad_left
from rhlens.evaluation import evaluate
from rhlens.decoding import chunked_forward, greedy_decode
from rhlens.heads import Head, HeadSet
from rhlens.interventions import knockout, knockout_effect, mean_head_outputs, random_heads
from rhlens.models import as_bridge


def capture(model, kind, layer, tokens, mask=None):
    seen = {}
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
            chunked, _ = chunked_forward(model, batch.tokens, batch.attention_mask, chunk_size=3)
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
    with knockout(model, HeadSet()):  # the context manager knocks out nothing: the baseline exactly
        none = evaluate(model, examples, metric="logprob", progress=False)
    assert none.score == effect.baseline.score
    assert count_hooks(model) == 0


def test_knockout_effect_text_metric_and_dataframe(make_model, examples):
    pytest.importorskip("pandas")
    model = make_model()
    effect = knockout_effect(model, examples, ["L1H0"], max_new_tokens=3, progress=False)
    df = effect.to_dataframe()
    assert list(df.columns) == ["example", "baseline", "knocked", "delta"] and len(df) == len(examples)
    assert effect.knocked.predictions is not None


# --- uniform knockout against an independent Hugging Face reference (issue 10 item 4) ----------
#
# The reference is a Hugging Face LlamaForCausalLM whose eager attention function is replaced by a
# test-local one doing what Wu et al.'s faiss_attn modeling_llama.py does for a block_list: the
# masked heads' pre-softmax scores are set to 0 before the causal mask is added, only at query
# rows from column FROM_ROW on (Wu: the decoding forwards, after prefilling prompt[:-1]). It shares
# no rhlens code; the model under test is the same checkpoint loaded with rhlens.load_hf_checkpoint.

REF_HEADS = {0: [1, 3], 1: [0]}


def _uniform_reference_attention(state):
    def attention(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
        groups = query.shape[1] // key.shape[1]
        key = key.repeat_interleave(groups, dim=1)  # [b, head, k, d]
        value = value.repeat_interleave(groups, dim=1)
        scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # [b, head, q, k]
        heads = REF_HEADS.get(module.layer_idx, [])
        q_len, k_len = scores.shape[2], scores.shape[3]
        rows = torch.arange(k_len - q_len, k_len) >= state["from_row"]
        for h in heads:
            scores[:, h, rows] = 0.0
        if attention_mask is not None:
            scores = scores + attention_mask[:, :, :, :k_len]
        weights = torch.softmax(scores.float(), dim=-1).to(query.dtype)
        return torch.matmul(weights, value).transpose(1, 2).contiguous(), weights

    return attention


@pytest.fixture
def hf_pair(tmp_path, tok, monkeypatch):
    """``(hf_model, rhlens_model, state)``: one tiny random Llama checkpoint, in Hugging Face with
    the reference attention, and loaded by rhlens."""
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-5, bos_token_id=1, eos_token_id=2,
        pad_token_id=0,
    )
    hf = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.normal_(0, 0.3)
    hf.config._attn_implementation = "eager"
    hf.save_pretrained(tmp_path / "ckpt")
    tok.save_pretrained(tmp_path / "ckpt")
    state = {"from_row": 10**9}
    monkeypatch.setattr(modeling_llama, "eager_attention_forward", _uniform_reference_attention(state))
    return hf, rhlens.load_hf_checkpoint(tmp_path / "ckpt"), state


@torch.no_grad()
def _reference_greedy(hf, state, prompt, steps, scope):
    cache = DynamicCache()
    state["from_row"] = len(prompt) - 1 if scope == "decode" else 0
    hf(torch.tensor([prompt[:-1]]), cache=cache, use_cache=True)
    inp, out = torch.tensor([prompt[-1:]]), []
    for _ in range(steps):
        token = int(hf(inp, cache=cache, use_cache=True).logits[0, -1].argmax())
        out.append(token)
        inp = torch.tensor([[token]])
    return out


@torch.no_grad()
def _reference_logprob(hf, state, tok, example, scope):
    prompt = tok(example.prompt)["input_ids"]
    answer = tok(" " + example.answer, add_special_tokens=False)["input_ids"]
    state["from_row"] = len(prompt) - 1 if scope == "decode" else 0
    lp = hf(torch.tensor([prompt + answer])).logits[0].float().log_softmax(-1)
    return sum(float(lp[len(prompt) - 1 + j, t]) for j, t in enumerate(answer))


def test_uniform_knockout_scopes_equal_an_independent_hf_reference(hf_pair, tok, examples):

    hf, model, state = hf_pair
    heads = [Head(l, h) for l, hs in REF_HEADS.items() for h in hs]
    prompts = [tok(ex.prompt)["input_ids"] for ex in examples]
    ref = {}
    for scope in ("decode", "all"):
        ref[scope] = [_reference_greedy(hf, state, p, 6, scope) for p in prompts]
        with knockout(model, heads, "uniform", scope=scope):
            got = greedy_decode(model, prompts, max_new_tokens=6, stop_ids=set(), chunk_size=5).tokens
        assert got == ref[scope], scope
        ref_lp = torch.tensor([_reference_logprob(hf, state, tok, ex, scope) for ex in examples])
        with knockout(model, heads, "uniform", scope=scope):
            lp = evaluate(model, examples, metric="logprob", batch_size=3, chunk_size=6, progress=False).per_example
        torch.testing.assert_close(lp, ref_lp.float(), rtol=1e-4, atol=1e-4)
    state["from_row"] = 10**9
    intact = [_reference_greedy(hf, state, p, 6, "none") for p in prompts]
    assert ref["decode"] != ref["all"] and ref["decode"] != intact  # the scopes really differ here


def test_scope_errors_and_bare_forwards(make_model, logits_of):
    model = make_model()
    tokens = model.to_tokens("Ann lives in Rome .")
    with pytest.raises(ValueError, match="Unknown knockout scope 'prefill'"):
        with knockout(model, ["L0H0"], "uniform", scope="prefill"):
            pass
    # a bare forward has no decoding steps of its own: knocked out at every position either way
    with knockout(model, ["L0H0"], "uniform", scope="decode"):
        decode = logits_of(model, tokens)
    with knockout(model, ["L0H0"], "uniform", scope="all"):
        everywhere = logits_of(model, tokens)
    assert torch.equal(decode, everywhere)


@pytest.mark.parametrize("mode", ["zero", "uniform"])
def test_decode_scope_leaves_the_prompt_intact(make_model, examples, mode):
    """Teacher-forced under scope="decode": the prompt positions before the last are the intact
    model's, so a one-token answer's log-prob depends only on the last prompt row's knockout."""

    model = make_model()
    seen = {}

    def capture(resid, hook):
        seen.setdefault(hook.name, []).append(resid.clone())

    for scope in (None, "decode", "all"):
        ctx = knockout(model, ["L0H1", "L0H2"], mode, scope=scope) if scope else contextlib.nullcontext()
        with ctx, hooks(model, [(hook_name("resid_pre", 1), capture)]):
            evaluate(model, examples[:1], metric="logprob", progress=False)
    intact, decode, everywhere = seen[hook_name("resid_pre", 1)]
    n = intact.shape[1]
    prompt_len = n - 1  # the answer is one token: the last prompt row predicts it
    torch.testing.assert_close(decode[:, : prompt_len - 1], intact[:, : prompt_len - 1], rtol=0, atol=0)
    assert (decode[:, prompt_len - 1] - intact[:, prompt_len - 1]).abs().max() > 1e-4
    assert (everywhere[:, : prompt_len - 1] - intact[:, : prompt_len - 1]).abs().max() > 1e-4


# --- random controls (issue 10 item 5) ----------------------------------------------------------


def test_random_heads_exclude_explicitly(make_model):
    model = make_model()
    scores = torch.zeros(2, 4)
    scores[0, 1], scores[1, 3], scores[1, 0] = 0.5, 0.11, 0.1  # 0.1 itself is not above the threshold
    for seed in range(5):
        drawn = random_heads(model, 6, scores=scores, seed=seed)
        assert not drawn & HeadSet(["L0H1", "L1H3"])
    with pytest.raises(ValueError, match="only 6 remain"):
        random_heads(model, 7, scores=scores)
    assert len(random_heads(model, 8, exclude=())) == 8
    with pytest.raises(ValueError, match="pass scores=.*or exclude="):
        random_heads(model, 2)


def test_knockout_effect_controls(make_model, examples):
    model = make_model()
    scores = torch.zeros(2, 4)
    scores[0, :3] = 0.9
    effect = knockout_effect(model, examples, ["L0H0"], metric="logprob", n_random=3, scores=scores, progress=False)
    assert len(effect.controls) == len(effect.control_heads) == 3
    for heads in effect.control_heads:
        assert len(heads) == 1 and not heads & HeadSet(["L0H0", "L0H1", "L0H2"])
    mean = sum(c.score for c in effect.controls) / 3
    assert effect.control_delta == pytest.approx(mean - effect.baseline.score)
    with pytest.raises(ValueError, match="exclude="):
        knockout_effect(model, examples, ["L0H0"], metric="logprob", n_random=1, progress=False)
    none = knockout_effect(model, examples, ["L0H0"], metric="logprob", baseline=effect.baseline, progress=False)
    assert none.controls == [] and none.control_delta != none.control_delta  # NaN without controls


@pytest.mark.parametrize("scope", ["decode", "all"])
def test_uniform_knockout_scope_on_a_bridge_equals_hooked(make_model, tok, scope):
    """A TransformerBridge edits hook_attn_scores (eager), a HookedTransformer the rotated query
    (fused): same tokens under either scope."""

    model = make_model(n_key_value_heads=2)
    bridge = as_bridge(model)
    prompts = [tok("Ann lives in Rome . Bob lives in Oslo .")["input_ids"], tok("Cat sat on the mat .")["input_ids"]]
    heads = ["L0H1", "L1H0", "L1H3"]
    with knockout(model, heads, "uniform", scope=scope):
        hooked = greedy_decode(model, prompts, max_new_tokens=5, stop_ids=set(), chunk_size=4).tokens
    with knockout(bridge, heads, "uniform", scope=scope):
        bridged = greedy_decode(bridge, prompts, max_new_tokens=5, stop_ids=set(), chunk_size=4).tokens
    assert hooked == bridged
