"""The per-batch fixed costs issue 25 (item 4) named, on both model classes: ``analysis_mode`` walks
the modules only when the training flag changes, and hooks on a bridge resolve names without
rebuilding its ``hook_dict``; hooks still fire under the name asked for and are removed on exit."""

import pytest
import torch

from rhlens.adapter import analysis_mode, count_hooks, hook_name, hooks
from rhlens.models import as_bridge, tiny_llama, word_level_tokenizer

TEXT = "the sky is blue . the grass is green"


@pytest.fixture(scope="module", params=["native", "bridge"])
def model(request):
    m = tiny_llama(tokenizer=word_level_tokenizer([TEXT]), n_layers=2, seed=0)
    return m if request.param == "native" else as_bridge(m)


def test_analysis_mode_walks_the_modules_only_when_the_flag_changes(model, monkeypatch):
    calls = []
    original = type(model).train
    monkeypatch.setattr(type(model), "train", lambda self, mode=True: calls.append(mode) or original(self, mode))
    model.eval()
    calls.clear()
    with analysis_mode(model):
        assert not torch.is_grad_enabled()
    assert calls == [] and not model.training
    model.train()
    calls.clear()
    with analysis_mode(model):
        assert not model.training
    assert calls == [False, True] and model.training
    model.eval()


def test_hooks_fire_under_the_asked_name_and_are_removed(model, monkeypatch):
    tokens = model.to_tokens(TEXT)
    before = count_hooks(model)
    seen = []
    kinds = ("resid_pre", "z", "pattern", "attn_out")
    with hooks(model, [(hook_name(k, 1), lambda x, hook: seen.append(hook.name)) for k in kinds]):
        assert count_hooks(model) == before + len(kinds)
        model(tokens)
    assert sorted(seen) == sorted(hook_name(k, 1) for k in kinds) and count_hooks(model) == before
    if not isinstance(getattr(type(model), "hook_dict", None), property):
        return  # a HookedTransformer keeps hook_dict as a plain attribute (nothing rebuilt)
    rebuilt = []
    original = type(model).hook_dict
    monkeypatch.setattr(type(model), "hook_dict", property(lambda self: rebuilt.append(1) or original.fget(self)))
    for _ in range(3):
        with hooks(model, [(hook_name("z", 0), lambda x, hook: None)]):
            model(tokens)
    assert rebuilt == []  # resolved from the map built once per model


def test_a_hook_that_raises_is_still_removed(model):
    before = count_hooks(model)
    with pytest.raises(RuntimeError, match="boom"):
        with hooks(model, [(hook_name("z", 0), lambda x, hook: None)]):
            raise RuntimeError("boom")
    assert count_hooks(model) == before
    with pytest.raises((KeyError, ValueError)):
        with hooks(model, [("blocks.99.attn.hook_z", lambda x, hook: None)]):
            pass
