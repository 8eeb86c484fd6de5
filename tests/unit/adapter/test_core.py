"""rhlens.adapter.core: hook names, architectures, hook and mode context managers."""

import pytest
import torch

from rhlens.adapter import (
    HOOK_KINDS,
    UnsupportedModelError,
    analysis_mode,
    architecture,
    count_hooks,
    forward,
    hook_layer,
    hook_name,
    hooks,
    model_kind,
    prepends_bos,
    tokenizer_of,
    weight_processing,
)
from rhlens.adapter.core import NATIVE_KIND
from rhlens.models import as_bridge, tiny_gpt2, tiny_llama, word_level_tokenizer


@pytest.fixture(scope="module")
def tok():
    return word_level_tokenizer(["The sky is blue . The grass is green ."])


@pytest.fixture(scope="module")
def llama(tok):
    return tiny_llama(tokenizer=tok, n_key_value_heads=2)


@pytest.fixture(scope="module")
def bridge(llama):
    return as_bridge(llama)


def test_hook_name_and_layer():
    assert hook_name("pattern", 3) == "blocks.3.attn.hook_pattern"
    assert hook_name("embed") == "hook_embed"
    assert hook_name("rot_k", 0) == "blocks.0.attn.hook_rot_k"
    assert hook_layer(hook_name("z", 7)) == 7
    with pytest.raises(ValueError, match="Unknown hook kind 'patern'"):
        hook_name("patern", 0)
    with pytest.raises(ValueError, match="needs a layer"):
        hook_name("z")
    with pytest.raises(ValueError, match="not a per-layer hook name"):
        hook_layer("hook_embed")


@pytest.mark.parametrize("kind", [k for k in HOOK_KINDS if k != "result"])
def test_every_hook_kind_exists_on_both_model_types(llama, bridge, kind):
    layer = None if kind == "embed" else 1
    name = hook_name(kind, layer)
    assert name in llama.hook_dict
    assert name in bridge.hook_dict


def test_architecture_hooked_bridge_and_gqa(tok, llama, bridge):
    a = architecture(llama)  # tiny_llama: a HookedTransformer on TransformerLens 3, a bridge on 4
    assert (a.kind, a.n_layers, a.n_heads, a.n_kv_heads, a.group_size) == (NATIVE_KIND, 2, 4, 2, 2)
    assert a.d_vocab == len(tok) and a.gated_mlp and a.act_fn == "silu"
    b = architecture(bridge)
    assert b.kind == "bridge" and a.differences(b) == []
    full = architecture(tiny_llama(tokenizer=tok))
    assert full.n_kv_heads == full.n_heads == 4 and full.group_size == 1
    assert a.differences(full) == ["n_kv_heads: 2 != 4"]
    gpt2 = architecture(tiny_gpt2(tokenizer=tok))
    assert "positional_embedding_type: 'rotary' != 'standard'" in a.differences(gpt2)
    assert a.to_dict()["n_kv_heads"] == 2


def test_unsupported_model():
    with pytest.raises(UnsupportedModelError, match="torch.nn.modules.linear.Linear.*load_hf_checkpoint"):
        model_kind(torch.nn.Linear(2, 2))
    with pytest.raises(UnsupportedModelError):
        architecture(object())
    with pytest.raises(UnsupportedModelError):
        with hooks(torch.nn.Linear(2, 2)):
            pass


def test_hooks_fire_and_are_removed_after_exception(llama, bridge):
    for model in (llama, bridge):
        tokens = model.to_tokens("The sky is blue .")
        # The bridge installs internal forward pre-hooks (on its RMSNorm wrappers) at its first
        # forward; they stay. Count from after a warm-up forward.
        forward(model, tokens)
        before = count_hooks(model)
        seen = []
        with hooks(model, [(hook_name("pattern", 0), lambda t, hook: seen.append(hook.name))]):
            assert count_hooks(model) > before
            forward(model, tokens)
        assert seen == ["blocks.0.attn.hook_pattern"]
        assert count_hooks(model) == before
        with pytest.raises(RuntimeError, match="inside"):
            with hooks(model, [(hook_name("z", 1), lambda t, hook: None)]):
                raise RuntimeError("inside")
        assert count_hooks(model) == before

        def bad_hook(t, hook):
            raise KeyError("from hook")

        with pytest.raises(KeyError, match="from hook"):
            with hooks(model, [(hook_name("q", 0), bad_hook)]):
                forward(model, tokens)
        assert count_hooks(model) == before


def test_forward_matches_between_types_and_never_adds_bos(llama, bridge):
    tokens = llama.to_tokens("The sky is blue .")
    with torch.no_grad():
        a, b = forward(llama, tokens), forward(bridge, tokens)
    assert a.shape == (1, tokens.shape[1], llama.cfg.d_vocab)
    assert (a - b).abs().max() < 1e-4


@pytest.mark.parametrize("start_training", [True, False])
def test_analysis_mode_restores_training_flag(llama, start_training):
    llama.train(start_training)
    try:
        with analysis_mode(llama) as m:
            assert m is llama and not llama.training
            assert torch.is_inference_mode_enabled()
        assert llama.training is start_training
        with pytest.raises(ValueError):
            with analysis_mode(llama):
                raise ValueError("boom")
        assert llama.training is start_training
    finally:
        llama.eval()


def test_tokenizer_bos_and_weight_processing(tok, llama):
    assert tokenizer_of(llama) is llama.tokenizer
    assert prepends_bos(llama)
    assert weight_processing(llama) == {"fold_ln": False}  # read off the config, on both majors
    assert weight_processing(tiny_llama(tokenizer=tok, normalization_type="RMSPre")) == {"fold_ln": True}
    from rhlens.adapter.native import new_model

    bare = new_model(dict(n_layers=1, d_model=8, n_heads=2, d_head=4, n_ctx=4, d_vocab=5, act_fn="relu"), tokenizer=None)
    with pytest.raises(ValueError, match="no tokenizer.*set_tokenizer"):
        tokenizer_of(bare)
