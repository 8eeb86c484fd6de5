"""Helpers for the models tests: tiny Hugging Face checkpoints written to tmp folders."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

CORPUS = [
    "The sky is blue . The grass is green .",
    "Mary went to the garden . John moved to the kitchen .",
    "Where is Mary ? Answer : garden",
]


@pytest.fixture(scope="session")
def tok():
    from rhlens.models import word_level_tokenizer

    return word_level_tokenizer(CORPUS)


def build_hf_model(family: str, vocab_size: int, *, n_kv: int | None = None, seed: int = 0, **overrides):
    """A tiny random Hugging Face causal LM of ``family`` (llama, mistral, qwen2, gpt2), eager attention."""
    import transformers

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if family == "gpt2":
        cfg = transformers.GPT2Config(n_embd=32, n_head=4, n_layer=2, n_positions=64, **common, **overrides)
        model = transformers.GPT2LMHeadModel(cfg)
    else:
        cls_cfg, cls_model = {
            "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
            "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
            "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
        }[family]
        kw = dict(
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=n_kv or 4,
            max_position_embeddings=64,
            rms_norm_eps=1e-5,
            rope_theta=10000.0,
            **common,
        )
        if family == "mistral":
            kw["sliding_window"] = None
        kw.update(overrides)
        cfg = cls_cfg(**kw)
        model = cls_model(cfg)
    # Random norm weights and biases so that a wrong mapping cannot hide behind ones and zeros.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or ".ln_" in name:
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.normal_(0, 0.1)
    model.config._attn_implementation = "eager"
    return model.eval()


@pytest.fixture
def save_hf(tmp_path, tok):
    """``save_hf(family, **kw) -> (folder, hf_model)``: a tiny checkpoint folder with tokenizer."""

    def _save(family: str, *, name: str | None = None, **kw):
        model = build_hf_model(family, len(tok), **kw)
        folder = tmp_path / (name or family)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        return folder, model

    return _save
