"""Tiny models and key-value examples for the trainer's unit tests."""

import pytest

import rhlens
from rhlens.tasks import generate


def kv_examples(n: int, *, seed: int = 0, context_tokens: int = 40):
    """Short symbolic key-value examples (two or three pairs, one-chunk keys and values)."""
    return generate("kv", "symbolic", n=n, context_tokens=context_tokens, seed=seed, key_chunks=1, value_chunks=1)


@pytest.fixture(scope="session")
def kv_tokenizer():
    texts = [e.prompt + e.completion for e in kv_examples(200) + kv_examples(50, seed=1)]
    return rhlens.word_level_tokenizer(texts)


@pytest.fixture
def build_model(kv_tokenizer):
    """``build_model(**overrides)``: a 1-layer 32-wide tiny Llama over the kv tokenizer."""

    def build(**overrides):
        cfg = dict(n_layers=1, d_model=32, n_heads=4, d_mlp=64, n_ctx=64, seed=0)
        cfg.update(overrides)
        return rhlens.tiny_llama(tokenizer=kv_tokenizer, **cfg)

    return build


@pytest.fixture
def examples():
    return kv_examples(24)
