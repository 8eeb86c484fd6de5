"""Tiny models from a config and the word-level tokenizer."""

import pytest
import torch

from rhlens.adapter import architecture
from rhlens.models import tiny_gpt2, tiny_llama, word_level_tokenizer


def test_tiny_llama_shape_and_determinism(tok):
    a = tiny_llama(tokenizer=tok, n_key_value_heads=2, seed=5)
    b = tiny_llama(tokenizer=tok, n_key_value_heads=2, seed=5)
    arch = architecture(a)
    assert (arch.n_layers, arch.n_heads, arch.n_kv_heads, arch.d_head) == (2, 4, 2, 16)
    assert arch.positional_embedding_type == "rotary" and arch.gated_mlp and arch.normalization_type == "RMS"
    assert arch.d_vocab == len(tok)
    assert torch.equal(a.W_Q, b.W_Q)
    assert not torch.equal(a.W_Q, tiny_llama(tokenizer=tok, n_key_value_heads=2, seed=6).W_Q)
    assert not a.training


def test_tiny_overrides(tok):
    model = tiny_llama(tokenizer=tok, d_model=32, n_heads=2, n_layers=3, n_ctx=64)
    assert (model.cfg.d_head, model.cfg.rotary_dim, model.cfg.n_layers, model.cfg.n_ctx) == (16, 16, 3, 64)
    with pytest.raises(ValueError, match="multiple of n_key_value_heads"):
        tiny_llama(tokenizer=tok, n_key_value_heads=3)
    with pytest.raises(ValueError, match="d_vocab=4 is smaller"):
        tiny_llama(tokenizer=tok, d_vocab=4)


def test_tiny_gpt2(tok):
    model = tiny_gpt2(tokenizer=tok)
    arch = architecture(model)
    assert arch.positional_embedding_type == "standard" and arch.normalization_type == "LN"
    logits = model(model.to_tokens("The sky is blue ."))
    assert logits.shape == (1, 6, len(tok))


def test_tokenizer_ids_bos_and_offsets():
    tok = word_level_tokenizer(["The sky is blue.", "Answer: blue"])
    assert [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id] == [0, 1, 2, 3]
    assert tok.is_fast and tok.padding_side == "left"
    enc = tok("The sky is purple.", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == ["<bos>", "The", "sky", "is", "<unk>", "."]
    assert enc["offset_mapping"] == [(0, 0), (0, 3), (4, 7), (8, 10), (11, 17), (17, 18)]
    # Same vocabulary for the same inputs in any order.
    assert word_level_tokenizer(["Answer: blue", "The sky is blue."]).get_vocab() == tok.get_vocab()


def test_tokenizer_works_with_to_tokens_and_left_padding(tok):
    model = tiny_llama(tokenizer=tok)
    tokens = model.to_tokens(["The sky is blue .", "Where is Mary ?"])
    assert ((tokens == tok.bos_token_id).sum(1) == 1).all()  # BOS once per row, not twice
    short = model.to_tokens(["Mary", "The sky is blue ."], padding_side="left")
    assert short[0, 0] == tok.pad_token_id and short[0, -1] == tok.convert_tokens_to_ids("Mary")
