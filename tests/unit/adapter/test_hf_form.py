"""rhlens.adapter.hf_form: a fine-tune moves what the model's Hugging Face form has, on either major."""

import pytest
import torch

import rhlens
from rhlens.adapter.core import NATIVE_KIND
from rhlens.adapter.hf_form import match_hf_form
from rhlens.adapter.native import model_state

HOOKED_ONLY = pytest.mark.skipif(NATIVE_KIND != "hooked", reason="needs HookedTransformer (TransformerLens 3); 4.x has only bridges")


def _tiny(**kw):
    return rhlens.tiny_llama(tokenizer=rhlens.default_tokenizer(), seed=0, n_layers=2, **kw)


@HOOKED_ONLY
def test_b_in_folds_into_b_out_with_the_same_function_and_zero_biases_stay_fixed():
    model = _tiny()
    with torch.no_grad():
        for block in model.blocks:
            block.mlp.b_in.normal_(0, 0.5)
    tokens = torch.randint(1, model.cfg.d_vocab, (2, 12))
    before = model(tokens)
    frozen = match_hf_form(model)
    assert (model(tokens) - before).abs().max() < 1e-4
    assert all(float(b.mlp.b_in.abs().max()) == 0 for b in model.blocks)
    assert {"blocks.0.mlp.b_in", "blocks.1.mlp.b_in"} <= frozen  # never in Hugging Face form
    assert {"blocks.0.attn.b_Q", "blocks.1.attn.b_O", "unembed.b_U"} <= frozen  # zero: no attention_bias, no lm_head.bias
    assert "blocks.0.mlp.b_out" not in frozen  # it holds the folded b_in: down_proj.bias


@HOOKED_ONLY
def test_nonzero_biases_train():
    model = _tiny()
    with torch.no_grad():
        model.blocks[0].attn.b_Q.fill_(0.1)
        model.unembed.b_U.fill_(0.2)
    frozen = match_hf_form(model)
    assert not any(".attn." in name for name in frozen) and "unembed.b_U" not in frozen


def test_a_bridge_keeps_its_parameters_except_a_zero_lm_head_bias():
    bridge = rhlens.as_bridge(_tiny())
    frozen = match_hf_form(bridge)
    assert all(name.startswith("lm_head.") and name.endswith(".bias") for name in frozen)


def test_an_attention_only_bridge_trains_the_numbers_the_hooked_transformer_trains():
    """The width-0 MLPs and their norms (post_attention_layernorm) of an attention-only bridge stay
    fixed: it trains as many numbers as the HookedTransformer's weights less its zero biases."""
    model = _tiny(attn_only=True)
    bridge = rhlens.as_bridge(model)
    frozen = match_hf_form(bridge)
    dead = {n for n, _ in bridge.named_parameters() if ".post_attention_layernorm." in n or ".mlp." in n}
    assert len(dead) == 2 * 4 and dead <= frozen  # per layer: the norm, gate, up and down projections
    trained = sum(p.numel() for n, p in bridge.named_parameters() if n not in frozen)
    weights = {k: v for k, v in model_state(model).items() if not k.rsplit(".", 1)[-1].lstrip("_").startswith("b_")}
    assert trained == sum(v.numel() for v in weights.values()) and not any(".ln2." in k or ".mlp." in k for k in weights)


@HOOKED_ONLY
def test_a_fine_tune_is_the_same_on_a_hooked_transformer_and_its_bridge():
    # Before match_hf_form the HookedTransformer also trained its zero biases (b_Q ... b_U) and b_in:
    # the second step's loss differed by 0.077 and b_U by 2.5e-3.
    model = _tiny()
    bridge = rhlens.as_bridge(model)
    examples = rhlens.generate("mdqa", "realistic", 24, context_tokens=128, seed=0)
    config = rhlens.TrainConfig(steps=3, batch_size=8, lr=1e-3, warmup_steps=1, seed=0, progress=False)
    hooked_losses = rhlens.train(model, examples, config).loss_curve
    bridge_losses = rhlens.train(bridge, examples, config).loss_curve
    assert max(abs(a - b) for a, b in zip(hooked_losses, bridge_losses)) < 1e-3
    after, bridged = model_state(model), model_state(bridge)  # TransformerLens keys for both
    assert max(float((after[k].float() - bridged[k].float()).abs().max()) for k in after if k in bridged) < 1e-3
