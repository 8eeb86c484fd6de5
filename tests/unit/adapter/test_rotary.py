"""Context extension: rotary tables, n_ctx and RoPE base changed in place."""

import pytest
import torch

import rhlens
from rhlens.adapter import UnsupportedModelError
from rhlens.adapter.rotary import rebuild_rotary_tables, rotary_rows
from rhlens.training import extend_context



def _tokens(n: int, d_vocab: int) -> torch.Tensor:
    return torch.randint(4, d_vocab, (2, n), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("n_kv", [None, 2])
def test_same_base_keeps_logits_below_old_context(n_kv):
    model = rhlens.tiny_llama(n_ctx=32, n_key_value_heads=n_kv)
    tokens = _tokens(32, model.cfg.d_vocab)
    before = model(tokens)
    extend_context(model, 96)
    assert model.cfg.n_ctx == 96 and rotary_rows(model) == 96
    assert torch.allclose(model(tokens), before, atol=1e-6)
    longer = torch.cat([tokens, _tokens(64, model.cfg.d_vocab)], dim=1)
    assert model(longer).shape == (2, 96, model.cfg.d_vocab)
    assert torch.allclose(model(longer)[:, :32], before, atol=1e-5)


def test_new_base_changes_rotations_and_is_used_by_every_layer():
    model = rhlens.tiny_llama(n_ctx=32, n_layers=2)
    tokens = _tokens(16, model.cfg.d_vocab)
    before = model(tokens)
    extend_context(model, 64, rotary_base=500_000)
    assert model.cfg.rotary_base == 500_000
    reference = rhlens.tiny_llama(n_ctx=64, n_layers=2, rotary_base=500_000)
    assert not torch.allclose(model(tokens), before, atol=1e-4)
    # the weights are the same seed: the extended model equals one built at the new base (in every layer)
    assert torch.allclose(model(tokens), reference(tokens), atol=1e-5)


def test_the_extended_model_saves_and_loads_at_its_new_context(tmp_path):
    model = rhlens.tiny_llama(n_ctx=32, n_layers=2)
    extend_context(model, 64, rotary_base=500_000)
    loaded = rhlens.load_model(rhlens.save_model(model, tmp_path / "extended"))
    assert (loaded.cfg.n_ctx, loaded.cfg.rotary_base) == (64, 500_000)
    tokens = _tokens(48, model.cfg.d_vocab)
    assert torch.allclose(loaded(tokens), model(tokens), atol=1e-5)


def test_padded_inputs_past_the_old_context():
    model = rhlens.tiny_llama(n_ctx=16)
    extend_context(model, 40)
    tokens = _tokens(40, model.cfg.d_vocab)
    mask = torch.ones_like(tokens)
    mask[1, :5] = 0
    out = model(tokens, attention_mask=mask)
    assert torch.isfinite(out).all()


def test_rebuild_keeps_device_and_lazily_grows():
    model = rhlens.tiny_llama(n_ctx=4096)
    assert rotary_rows(model) == 2048  # TransformerLens's initial cache size
    rebuild_rotary_tables(model)
    assert rotary_rows(model) == 2048
    assert model.blocks[0].attn.rotary_cos.device == next(model.parameters()).device


def test_learned_positions_cannot_grow():
    model = rhlens.tiny_gpt2(n_ctx=32)
    with pytest.raises(UnsupportedModelError, match="learned"):
        extend_context(model, 64)
    with pytest.raises(ValueError, match="rotary"):
        extend_context(model, 16, rotary_base=1000)


def test_bad_values():
    model = rhlens.tiny_llama(n_ctx=32)
    with pytest.raises(ValueError, match="n_ctx"):
        extend_context(model, 0)
    with pytest.raises(ValueError, match="rotary_base"):
        extend_context(model, 64, rotary_base=-1)
