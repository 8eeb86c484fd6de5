"""``config.json`` problems are named before anything is allocated (issue 22 items 16 and 17):
non-numeric or non-positive ``rope_theta`` / ``rms_norm_eps``, and sizes whose weights could not
fit the device's free memory."""

import pytest

from rhlens.models.hf.config import available_memory, hf_config_fields, hooked_config_from_hf
from rhlens.models.hf.folder import CheckpointError

LLAMA = {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 8,
         "num_key_value_heads": 4, "intermediate_size": 172, "num_hidden_layers": 2, "vocab_size": 512,
         "max_position_embeddings": 512, "rope_theta": 10000.0, "rms_norm_eps": 1e-6}


@pytest.mark.parametrize("key, value", [("rope_theta", "abc"), ("rope_theta", 0), ("rope_theta", -1.0),
                                        ("rms_norm_eps", 0.0), ("rms_norm_eps", float("nan")), ("rms_norm_eps", True)])
def test_non_positive_or_non_numeric_settings_name_the_key(key, value):
    with pytest.raises(CheckpointError, match=rf"ckpt/config.json: field '{key}' must be a positive number, got"):
        hooked_config_from_hf({**LLAMA, key: value}, source="ckpt/config.json")


def test_sizes_beyond_free_memory_are_refused_naming_the_keys():
    huge = {**LLAMA, "hidden_size": 4096, "num_attention_heads": 32, "num_key_value_heads": 8,
            "intermediate_size": 14336, "num_hidden_layers": 100000}
    with pytest.raises(CheckpointError, match=r"ckpt/config.json: the weights would take \d+\.\d GiB .*"
                                              r"num_hidden_layers=100000"):
        hf_config_fields(huge, source="ckpt/config.json")
    assert available_memory("cpu") is None or available_memory("cpu") > 0
    assert hf_config_fields(LLAMA)["n_layers"] == 2
