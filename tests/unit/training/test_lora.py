import pytest
import torch

from rhlens.adapter.native import set_model_state
from rhlens.models import tiny_gpt2
from rhlens.training.lora import (
    apply_lora,
    has_lora,
    load_lora_state_dict,
    lora_parameters,
    lora_state_dict,
    merge_lora,
    merged_state_dict,
)


def _tokens(model):
    return torch.randint(4, model.cfg.d_vocab, (2, 10), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("n_kv", [None, 2])
def test_zero_initialised_adapters_leave_the_model_unchanged(build_model, n_kv):
    model = build_model(n_key_value_heads=n_kv)
    tokens = _tokens(model)
    before = model(tokens)
    assert apply_lora(model, rank=2, alpha=4) == 4 * model.cfg.n_layers
    assert torch.allclose(model(tokens), before)
    assert all(not p.requires_grad for n, p in model.named_parameters() if "lora_" not in n)


@pytest.mark.parametrize("shape", ["llama", "llama-gqa", "gpt2"])
def test_merge_gives_a_plain_model_with_the_same_function(build_model, kv_tokenizer, shape):
    """Also where the weights are a bridge's Hugging Face Linear and Conv1D (GPT-2's c_proj) ones."""

    def build():
        if shape == "gpt2":
            return tiny_gpt2(tokenizer=kv_tokenizer, n_layers=1, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0)
        return build_model(n_key_value_heads=2 if shape == "llama-gqa" else None)

    model = build()
    tokens = _tokens(model)
    apply_lora(model, rank=2, alpha=4)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.normal_(0, 0.2)
    adapted = model(tokens)
    assert (adapted - build()(tokens)).abs().max() > 1e-2  # the adapters change the function
    state = merged_state_dict(model)
    fresh = build()
    set_model_state(fresh, state)
    assert torch.allclose(fresh(tokens), adapted, atol=1e-5)
    merge_lora(model)
    assert not has_lora(model)
    assert set(model.state_dict()) == set(fresh.state_dict())
    assert torch.allclose(model(tokens), adapted, atol=1e-5)


def test_update_shape_per_weight(build_model):
    model = build_model(n_key_value_heads=2)
    apply_lora(model, rank=3, alpha=3, targets=("k", "o"))
    state = lora_state_dict(model)
    d_model, d_head = model.cfg.d_model, model.cfg.d_head
    assert state["blocks.0.attn._W_K.lora_A"].shape == (d_model, 3)
    assert state["blocks.0.attn._W_K.lora_B"].shape == (3, 2 * d_head)
    assert state["blocks.0.attn.W_O.lora_A"].shape == (4 * d_head, 3)
    assert state["blocks.0.attn.W_O.base"].numel() == model.blocks[0].attn.W_O.numel()  # in the model's own layout


def test_state_round_trip_and_double_apply(build_model):
    model = build_model()
    apply_lora(model, rank=2, alpha=2)
    with torch.no_grad():
        for p in lora_parameters(model):
            p.uniform_()
    state = {k: v.clone() for k, v in lora_state_dict(model).items()}
    other = build_model(seed=1)
    apply_lora(other, rank=2, alpha=2)
    load_lora_state_dict(other, state)
    assert torch.allclose(other.blocks[0].attn.W_Q, model.blocks[0].attn.W_Q)
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, rank=2, alpha=2)
    with pytest.raises(ValueError, match="does not match"):
        load_lora_state_dict(other, {})
