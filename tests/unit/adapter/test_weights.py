"""The adapter's weight-layout functions (rhlens.adapter.weights / convert) on tiny models."""

import os

import pytest
import torch
from jaxtyping import TypeCheckError

from rhlens import adapter as ad
from rhlens.adapter.convert import hf_weight_converter, supported_activations
from rhlens.models import tiny_gpt2, tiny_llama


@pytest.fixture(scope="module")
def gqa():
    return tiny_llama(n_layers=2, n_heads=4, n_key_value_heads=2, seed=0)


def test_attention_modules_and_weight_names(gqa):
    """The TransformerLens names on either model class (on TransformerLens 3 also on the HookedTransformer's bridge)."""
    from rhlens.models import as_bridge

    plain_model = tiny_llama(n_layers=1, seed=0)
    for convert in (lambda m: m, as_bridge):
        mods = list(ad.attention_modules(convert(gqa)))
        assert [p for p, _ in mods] == ["blocks.0.attn", "blocks.1.attn"]
        attn = mods[0][1]
        assert [ad.attention_weight_name(attn, x) for x in "qkvo"] == ["W_Q", "_W_K", "_W_V", "W_O"]
        plain = dict(ad.attention_modules(convert(plain_model)))["blocks.0.attn"]
        assert ad.attention_weight_name(plain, "k") == "W_K"
        with pytest.raises(ValueError, match="unknown attention weight 'x'"):
            ad.attention_weight_name(attn, "x")


def test_attention_parameter_names_match_the_modules(gqa):
    named = {id(p) for n, p in gqa.named_parameters() if ad.is_attention_parameter(n)}
    owned = {id(p) for _, attn in ad.attention_modules(gqa) for p in attn.parameters()}
    assert named and named == owned  # HookedTransformer names (blocks.0.attn.W_Q) or a bridge's (...self_attn.q_proj...)
    assert not ad.is_attention_parameter("blocks.0.mlp.W_in")


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_attention_weight_slots_name_and_hold_each_weight(build):
    """Each slot's parameter is the model's own, and its layout reads back the TransformerLens weight."""
    from rhlens.adapter.native import model_state
    from rhlens.adapter.weights import attention_weight_slots, flat_to_weight

    model = build(n_layers=2, n_heads=4, seed=0, **({"n_key_value_heads": 2} if build is tiny_llama else {}))
    slots = list(attention_weight_slots(model))
    kv = "_" if build is tiny_llama else ""
    assert [s.name for s in slots[:4]] == ["blocks.0.attn.W_Q", f"blocks.0.attn.{kv}W_K", f"blocks.0.attn.{kv}W_V", "blocks.0.attn.W_O"]
    params = {id(p) for p in model.parameters()}
    state = model_state(model)  # TransformerLens layout: W_Q [head, d_model, d_head], W_O [head, d_head, d_model]
    for s in slots:
        weight = getattr(s.module, s.attr)
        assert id(weight) in params and tuple(weight.shape) == s.shape
        d_in, d_out = s.dims
        tl = state[s.name]
        flat = tl.reshape(d_in, d_out) if s.name.endswith("W_O") else tl.permute(1, 0, 2).reshape(d_in, d_out)
        assert torch.equal(flat_to_weight(flat, s.layout, s.shape), weight.detach())  # [in, out] map back in the slot's layout


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_final_residual_then_logits_equals_the_forward(build):
    model = build(n_layers=2, seed=1)
    tokens = torch.tensor([[1, 5, 7, 9, 2]])
    with torch.no_grad():
        expected = model(tokens)
        got = ad.logits_from_residual(model, ad.final_residual(model, tokens))
    assert torch.allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("build", [tiny_llama, tiny_gpt2])
def test_forward_from_a_layer_continues_the_forward_also_in_chunks_with_a_cache(build):
    """From every layer, whole or in chunks with a cache, left-padded, eager or fused: the logits of the
    plain forward at every real position; only the hooks of blocks from that layer on fire. On
    TransformerLens 3 the HookedTransformer and its bridge (which walks its blocks itself) agree."""
    from rhlens.adapter.fused import fused_attention
    from rhlens.models import as_bridge

    model = build(n_layers=3, n_heads=4, seed=0, **({"n_key_value_heads": 2} if build is tiny_llama else {}))
    models = [model] + ([as_bridge(model)] if ad.model_kind(model) == "hooked" else [])
    tokens = torch.tensor([[1, 5, 7, 9, 2, 4], [3, 3, 8, 6, 1, 2]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])  # the first row left-padded
    real = mask.bool()
    finals: dict = {}
    for m in models:
        with torch.no_grad():
            expected = m(tokens, attention_mask=mask)  # [batch, pos, d_vocab], the plain forward
            for layer in range(3):
                seen: dict = {}
                with ad.hooks(m, [(ad.hook_name("resid_pre", layer), lambda x, hook: seen.update(resid=x.clone()))]):
                    m(tokens, attention_mask=mask)
                fired: list = []
                names = [ad.hook_name("embed"), ad.hook_name("resid_pre", layer), ad.hook_name("z", layer)]
                with ad.hooks(m, [(n, lambda x, hook: fired.append(hook.name)) for n in names + [ad.hook_name("z", layer - 1)] * (layer > 0)]):
                    whole = ad.forward_from_layer(m, seen["resid"], layer, mask)
                assert fired == names[1:]  # not the embedding's, not an earlier block's
                cache = ad.new_kv_cache(m, 2)
                chunks = [ad.forward_from_layer(m, seen["resid"][:, s:e], layer, mask[:, s:e], cache) for s, e in ((0, 4), (4, 5), (5, 6))]
                with fused_attention(m):
                    fused = ad.forward_from_layer(m, seen["resid"], layer, mask)
                for final in (whole, torch.cat(chunks, dim=1), fused):
                    assert (ad.logits_from_residual(m, final) - expected)[real].abs().max() < 1e-5
                finals.setdefault(layer, []).append(whole)
    for hooked, *bridge in finals.values():
        assert all((b - hooked)[real].abs().max() < 1e-5 for b in bridge)


def test_forward_from_a_layer_refuses_a_bridge_it_does_not_walk():
    """A sliding window (Hugging Face masks those layers itself) is named, not computed wrongly."""
    from transformers import MistralConfig, MistralForCausalLM

    from rhlens.adapter.native import boot_bridge

    cfg = MistralConfig(vocab_size=16, hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                        num_key_value_heads=2, sliding_window=3, attn_implementation="eager")
    bridge = boot_bridge(MistralForCausalLM(cfg).eval(), None, "rhlens/windowed")
    assert "sliding_window=3" in ad.forward_from_layer_unsupported(bridge)
    assert ad.forward_from_layer_unsupported(tiny_llama(n_layers=1, seed=0)) is None
    with pytest.raises(NotImplementedError, match=r"forward_from_layer on this TransformerBridge: sliding-window attention"):
        ad.forward_from_layer(bridge, torch.zeros(1, 4, 16), 1, torch.ones(1, 4, dtype=torch.long))


def test_head_output_weight_is_that_heads_slice(gqa):
    """A view of the layer's W_O parameter (a HookedTransformer's W_O, a bridge's o_proj weight): that
    head's rows in TransformerLens layout, and a gradient through it reaches that head's part only."""
    from rhlens.adapter.native import model_state
    from rhlens.adapter.weights import attention_weight_slots, flat_to_weight

    slot = [s for s in attention_weight_slots(gqa, "o") if s.name == "blocks.1.attn.W_O"][0]
    param = getattr(slot.module, slot.attr)
    gqa.zero_grad()
    w = ad.head_output_weight(gqa, 1, 3)
    assert w.shape == (gqa.cfg.d_head, gqa.cfg.d_model)
    assert w.untyped_storage().data_ptr() == param.untyped_storage().data_ptr()  # not a copy
    assert torch.equal(w.detach(), model_state(gqa)["blocks.1.attn.W_O"][3])
    w.sum().backward()
    grad = torch.zeros(gqa.cfg.n_heads, gqa.cfg.d_head, gqa.cfg.d_model)  # [head, d_head, d_model]
    grad[3] = 1.0
    assert torch.equal(param.grad, flat_to_weight(grad.reshape(-1, gqa.cfg.d_model), slot.layout, slot.shape))
    gqa.zero_grad()


def test_set_unembed_copies_in_place():
    model = tiny_llama(n_layers=1, seed=2)
    ad.set_unembed(model, ad.embedding_matrix(model).T)
    tokens = torch.tensor([[3, 4]])
    with torch.no_grad():
        resid = ad.final_residual(model, tokens)
        by_hand = model.ln_final(resid) @ model.embed.W_E.T  # the reference spells the layout itself
        assert torch.allclose(ad.logits_from_residual(model, resid), by_hand + model.unembed.b_U, atol=1e-5)


def test_converters_and_activations():
    assert callable(hf_weight_converter("LlamaForCausalLM"))
    with pytest.raises(ValueError, match="no TransformerLens weight converter for 'FooForCausalLM'"):
        hf_weight_converter("FooForCausalLM")
    assert {"silu", "gelu_new"} <= supported_activations()


@pytest.mark.skipif(os.environ.get("RHLENS_TYPECHECK", "1") == "0", reason="run-time type checks switched off")
def test_shapes_are_checked_at_run_time_in_the_test_suite(gqa):
    """tests/conftest.py's jaxtyping hook: a residual without its batch axis contradicts
    ``Float[Tensor, "batch pos d_model"]`` and is refused before the function runs."""
    with pytest.raises(TypeCheckError, match="resid"):
        ad.logits_from_residual(gqa, torch.zeros(3, gqa.cfg.d_model))
