"""check_compatible compares what weight processing does to hook_z, not how a loader spelled it
(issue 14 item 21)."""

import pytest
import torch

from rhlens.adapter import record_weight_processing
from rhlens.interventions.compatibility import IncompatibleModelsError, check_compatible, processing_effects
from rhlens.models import load_bridge, load_hf_checkpoint
from tests.unit.interventions.conftest import build_examples
from tests.unit.models.conftest import build_hf_model

FLAGS = dict(fold_ln=True, center_writing_weights=True, center_unembed=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tok):
    path = tmp_path_factory.mktemp("llama")
    build_hf_model("llama", len(tok), n_kv=2).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _hook_z(model, tokens):
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("attn.hook_z"))
    return [cache[f"blocks.{l}.attn.hook_z"] for l in range(model.cfg.n_layers)]


@pytest.mark.parametrize("flags", [{}, FLAGS], ids=["unprocessed", "folded-and-centred"])
def test_hooked_and_bridge_of_one_checkpoint_patch(folder, flags):
    from rhlens.interventions import patch_heads

    hooked, bridge = load_hf_checkpoint(folder, **flags), load_bridge(folder)
    check_compatible(hooked, bridge)
    check_compatible(bridge, hooked)
    tokens = hooked.to_tokens("Ann lives in Rome . Bob lives in Oslo .")
    for a, b in zip(_hook_z(hooked, tokens), _hook_z(bridge, tokens)):
        assert (a - b).abs().max() < 1e-5  # what makes them equivalent for patching
    heads = [(l, h) for l in range(hooked.cfg.n_layers) for h in range(hooked.cfg.n_heads)]
    result = patch_heads(hooked, bridge, build_examples(2), heads, metric="logprob", progress=False)
    assert abs(float(result.delta)) < 1e-4


def test_processing_that_changes_hook_z_still_fails(folder):
    bridge = load_bridge(folder)
    hooked = load_hf_checkpoint(folder)
    record_weight_processing(hooked, **FLAGS, fold_value_biases=True)
    with pytest.raises(IncompatibleModelsError, match="weight processing fold_value_biases: True != False"):
        check_compatible(hooked, bridge)
    bridge.enable_compatibility_mode(disable_warnings=True)  # processes weights, records no flags
    assert processing_effects(bridge)["fold_value_biases"].startswith("unknown")
    with pytest.raises(IncompatibleModelsError, match="fold_value_biases: False != 'unknown"):
        check_compatible(load_hf_checkpoint(folder), bridge)
    with pytest.raises(IncompatibleModelsError, match="refactor_factored_attn_matrices: False != True"):
        other = load_hf_checkpoint(folder)
        record_weight_processing(other, refactor_factored_attn_matrices=True)
        check_compatible(load_hf_checkpoint(folder), other)
