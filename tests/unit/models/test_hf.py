"""load_hf_checkpoint: every supported family against the Hugging Face forward, plus bad folders."""

import json
import shutil

import pytest
import torch

from rhlens.adapter import architecture, weight_processing
from rhlens.adapter.core import NATIVE_KIND
from rhlens.adapter.rotary import rotary_rows
from rhlens.models import CheckpointError, load_hf_checkpoint
from rhlens.models.hf import hf_config_fields, read_hf_state_dict

TEXTS = ["The sky is blue . The grass is green .", "Where is Mary ? Answer : garden"]


def _tokens(model):
    return model.to_tokens(TEXTS[0])


def _max_diff(model, hf, tokens) -> float:
    with torch.no_grad():
        return (model(tokens) - hf(tokens).logits).abs().max().item()


@pytest.mark.parametrize(
    "family, n_kv",
    [("llama", None), ("llama", 2), ("llama", 1), ("mistral", 4), ("mistral", 2), ("qwen2", 4), ("qwen2", 2), ("gpt2", None)],
)
def test_family_logits_match_hf(save_hf, family, n_kv):
    folder, hf = save_hf(family, n_kv=n_kv)
    model = load_hf_checkpoint(folder)
    tokens = _tokens(model)
    assert _max_diff(model, hf, tokens) < 1e-4
    arch = architecture(model)
    if family != "gpt2":
        assert arch.n_kv_heads == (n_kv or 4)
        assert arch.positional_embedding_type == "rotary"
    assert weight_processing(model) == {"fold_ln": False, "center_writing_weights": False, "center_unembed": False}
    assert not model.training


def test_activations_match_hf_with_gqa(save_hf):
    folder, hf = save_hf("qwen2", n_kv=2)
    model = load_hf_checkpoint(folder)
    tokens = _tokens(model)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith(("hook_k", "hook_pattern")))
        out = hf(tokens, output_attentions=True)
    assert cache["blocks.1.attn.hook_k"].shape[2] == 2  # per key/value head
    assert torch.allclose(cache["blocks.1.attn.hook_pattern"], out.attentions[1], atol=1e-5)


def test_tied_embeddings_rope_theta_and_n_ctx_override(save_hf):
    folder, hf = save_hf("llama", n_kv=2, tie_word_embeddings=True, rope_theta=500000.0)
    model = load_hf_checkpoint(folder, n_ctx=256)
    assert model.cfg.rotary_base == 500000.0 and model.cfg.n_ctx == 256
    assert rotary_rows(model) == 256  # the positions the model computes, not only its config
    assert torch.equal(model.W_E, model.W_U.T)
    assert _max_diff(model, hf, _tokens(model)) < 1e-4


def test_rotary_base_and_prepend_bos_overrides(save_hf):
    """Both majors apply rotary_base to the positions the model computes, and default_prepend_bos."""
    folder, _ = save_hf("llama", n_kv=2)
    _, wider = save_hf("llama", name="wider", n_kv=2, rope_theta=500000.0)  # the same weights (same seed)
    model = load_hf_checkpoint(folder, rotary_base=500000.0, default_prepend_bos=False)
    assert model.cfg.rotary_base == 500000.0
    tokens = _tokens(model)
    assert tokens[0, 0] != model.tokenizer.bos_token_id and _tokens(load_hf_checkpoint(folder))[0, 0] == model.tokenizer.bos_token_id
    assert _max_diff(model, wider, tokens) < 1e-5 < 1e-4 < _max_diff(load_hf_checkpoint(folder), wider, tokens)


@pytest.mark.parametrize("rope", [{"rope_type": "linear", "factor": 2.0},
                                  {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                   "high_freq_factor": 4.0, "original_max_position_embeddings": 16}])
def test_rope_scaling(save_hf, rope):
    folder, hf = save_hf("llama", rope_parameters={"rope_theta": 10000.0, **rope})
    model = load_hf_checkpoint(folder)
    assert _max_diff(model, hf, _tokens(model)) < 1e-4


def test_mistral_sliding_window(save_hf):
    folder, hf = save_hf("mistral", n_kv=2, sliding_window=4)
    model = load_hf_checkpoint(folder)
    assert model.cfg.use_local_attn and model.cfg.window_size == 4
    tokens = _tokens(model)
    assert tokens.shape[1] > 4
    assert _max_diff(model, hf, tokens) < 1e-4


@pytest.mark.parametrize("family, n_kv, folded", [("llama", 2, "RMSPre"), ("gpt2", None, "LNPre")])
def test_weight_processing_is_recorded_and_keeps_log_probs(save_hf, family, n_kv, folded):
    """On both majors (a HookedTransformer on 3.x, a bridge on 4.x): folded and centred weights keep
    the Hugging Face model's log-probabilities (float32) and the processing is recorded."""
    folder, hf = save_hf(family, n_kv=n_kv)
    flags = dict(fold_ln=True, center_writing_weights=True, center_unembed=True)
    model = load_hf_checkpoint(folder, **flags)
    assert architecture(model).normalization_type == folded
    assert weight_processing(model) == flags
    tokens = _tokens(model)
    with torch.no_grad():
        logits, expected = model(tokens), hf(tokens).logits
    assert (logits - expected).abs().max().item() > 1e-3  # the weights did change (centred unembedding)
    assert (logits.log_softmax(-1) - expected.log_softmax(-1)).abs().max().item() < 1e-5


def test_sharded_safetensors(tmp_path, tok):
    from tests.unit.models.conftest import build_hf_model

    hf = build_hf_model("llama", len(tok), n_kv=2)
    hf.save_pretrained(tmp_path, max_shard_size="20KB")
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors.index.json").is_file()
    model = load_hf_checkpoint(tmp_path)
    assert _max_diff(model, hf, _tokens(model)) < 1e-4


def test_bin_weights_are_read_weights_only(tmp_path, tok):
    from tests.unit.models.conftest import build_hf_model

    hf = build_hf_model("gpt2", len(tok))
    hf.config.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    torch.save({k: v.clone() for k, v in hf.state_dict().items()}, tmp_path / "pytorch_model.bin")
    model = load_hf_checkpoint(tmp_path)
    assert _max_diff(model, hf, _tokens(model)) < 1e-4
    # A pickle with a non-tensor object is refused, not executed.
    torch.save({"x": object()}, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        read_hf_state_dict(tmp_path)


# ---- bad input ---------------------------------------------------------------------------


def test_missing_folder_and_config(tmp_path):
    with pytest.raises(CheckpointError, match="not a directory"):
        load_hf_checkpoint(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="config.json is missing"):
        load_hf_checkpoint(tmp_path)


def test_missing_weights(save_hf):
    folder, _ = save_hf("llama")
    (folder / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no weights in .*model.safetensors"):
        load_hf_checkpoint(folder)


def test_missing_shard(tmp_path, tok):
    from tests.unit.models.conftest import build_hf_model

    build_hf_model("llama", len(tok)).save_pretrained(tmp_path, max_shard_size="20KB")
    tok.save_pretrained(tmp_path)
    next(tmp_path.glob("model-00001-*.safetensors")).unlink()
    with pytest.raises(CheckpointError, match="missing from"):
        load_hf_checkpoint(tmp_path)


def test_missing_tokenizer(save_hf):
    folder, _ = save_hf("llama")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(CheckpointError, match="no tokenizer files .*save_pretrained"):
        load_hf_checkpoint(folder)


def test_generation_config_eos_list_is_a_stop(save_hf):
    """A checkpoint's generation_config.json EOS list (Llama-3-Instruct's <|eot_id|>) ends decoding."""
    from rhlens.stopping import default_stop_ids

    folder, _ = save_hf("llama")
    plain = default_stop_ids(load_hf_checkpoint(folder).tokenizer)
    assert not {7, 9} & plain
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [7, 9]}))
    assert default_stop_ids(load_hf_checkpoint(folder).tokenizer) == plain | {7, 9}
    from rhlens.models import load_bridge

    assert default_stop_ids(load_bridge(folder).tokenizer) == plain | {7, 9}


def _edit_config(folder, **changes):
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def test_unsupported_architecture(save_hf):
    folder, _ = save_hf("llama")
    _edit_config(folder, architectures=["FalconForCausalLM"])
    with pytest.raises(CheckpointError, match="FalconForCausalLM.*not supported.*LlamaForCausalLM"):
        load_hf_checkpoint(folder)
    _edit_config(folder, architectures=[], model_type="falcon")
    with pytest.raises(CheckpointError, match="'architectures'"):
        load_hf_checkpoint(folder)


def test_contradictory_config(save_hf):
    folder, _ = save_hf("llama")
    _edit_config(folder, hidden_size=30, head_dim=None)
    with pytest.raises(CheckpointError, match="hidden_size=30 is not divisible by num_attention_heads=4"):
        load_hf_checkpoint(folder)
    _edit_config(folder, hidden_size=32, num_key_value_heads=3)
    with pytest.raises(CheckpointError, match="num_key_value_heads=3"):
        load_hf_checkpoint(folder)
    _edit_config(folder, num_key_value_heads=4, num_hidden_layers=3)
    with pytest.raises(CheckpointError, match="do not match config.json.*missing"):
        load_hf_checkpoint(folder)
    _edit_config(folder, num_hidden_layers=2, intermediate_size=50)
    with pytest.raises(CheckpointError, match="contradict config.json"):
        load_hf_checkpoint(folder)


def test_unsupported_rope_scaling(save_hf):
    folder, _ = save_hf("llama")
    _edit_config(folder, rope_parameters={"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0})
    with pytest.raises(CheckpointError, match="'yarn'.*not supported"):
        load_hf_checkpoint(folder)


def test_tokenizer_larger_than_embedding(save_hf):
    folder, _ = save_hf("llama")
    _edit_config(folder, vocab_size=8)
    with pytest.raises(CheckpointError, match="vocab_size=8"):
        load_hf_checkpoint(folder)


def test_unknown_override(save_hf):
    folder, _ = save_hf("llama")
    with pytest.raises(CheckpointError, match="n_ctxx"):
        load_hf_checkpoint(folder, n_ctxx=5)


@pytest.mark.skipif(NATIVE_KIND != "bridge", reason="TransformerLens 3's HookedTransformer takes every config field")
def test_bridge_names_the_overrides_it_cannot_apply(save_hf):
    folder, _ = save_hf("llama")
    with pytest.raises(CheckpointError, match=r"\['use_attn_result'\] cannot be applied.*TransformerBridge.*default_prepend_bos, n_ctx, rotary_base"):
        load_hf_checkpoint(folder, use_attn_result=True, n_ctx=32)


def test_gpt2_n_ctx_cannot_grow(save_hf):
    folder, _ = save_hf("gpt2")
    with pytest.raises(CheckpointError, match="n_positions=64"):
        load_hf_checkpoint(folder, n_ctx=128)


def test_config_mapping_uses_head_dim():
    cfg = hf_config_fields({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_attention_heads": 4,
                            "head_dim": 32, "intermediate_size": 8, "num_hidden_layers": 1, "vocab_size": 10})
    assert cfg["d_head"] == 32 and cfg["rotary_dim"] == 32 and cfg["n_key_value_heads"] is None


# ---- the real checkpoint -----------------------------------------------------------------


@pytest.mark.realdata
def test_stories260k_matches_transformers(realdata):
    from transformers import LlamaForCausalLM

    folder = realdata / "models" / "stories260K"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    model = load_hf_checkpoint(folder)
    arch = architecture(model)
    assert (arch.n_layers, arch.n_heads, arch.n_kv_heads) == (5, 8, 4)
    hf = LlamaForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32, local_files_only=True)
    tokens = model.to_tokens(["Once upon a time, there was a little girl named Lily. She liked to play in the park."])
    assert _max_diff(model, hf.eval(), tokens) < 1e-4


# ---- issue 14: a model folder never reaches outside itself or runs its code -------------------


def _shard_with_index(tmp_path, tok, outside_name):
    """A sharded llama folder whose index maps one tensor to ``outside_name``; a copy of that shard
    is placed where the name points, so only the path check can stop the read."""
    from tests.unit.models.conftest import build_hf_model

    folder = tmp_path / "ckpt"
    build_hf_model("llama", len(tok)).save_pretrained(folder, max_shard_size="20KB")
    tok.save_pretrained(folder)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    key, shard = next(iter(index["weight_map"].items()))
    outside = (folder / outside_name) if not outside_name.startswith("/") else None
    target = outside if outside is not None else tmp_path / "abs.safetensors"
    shutil.copy(folder / shard, target)
    index["weight_map"][key] = outside_name if outside is not None else str(target)
    index_path.write_text(json.dumps(index))
    return folder


@pytest.mark.parametrize("outside_name", ["../stolen.safetensors", "/abs"])
def test_shard_index_paths_are_confined_to_the_folder(tmp_path, tok, outside_name):
    folder = _shard_with_index(tmp_path, tok, outside_name)
    with pytest.raises(CheckpointError, match="points outside"):
        read_hf_state_dict(folder)
    with pytest.raises(CheckpointError, match="model.safetensors.index.json: weight_map entry"):
        load_hf_checkpoint(folder)


def write_code_folder(folder, marker):
    """Make ``folder``'s tokenizer_config.json (and config.json, if any) point ``auto_map`` at a module
    that writes ``marker`` when imported."""
    (folder / "evil.py").write_text(
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('code from the model folder ran')\n"
        "from transformers import PreTrainedTokenizerFast, LlamaConfig\n"
        "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n"
        "class EvilConfig(LlamaConfig):\n    model_type = 'evil'\n"
    )
    path = folder / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(auto_map={"AutoTokenizer": [None, "evil.EvilTokenizer"]}, tokenizer_class="EvilTokenizer")
    path.write_text(json.dumps(cfg))
    if (folder / "config.json").is_file():
        _edit_config(folder, auto_map={"AutoConfig": "evil.EvilConfig"}, model_type="evil")


def test_auto_map_never_runs_code(save_hf, monkeypatch):
    from rhlens.models import load_bridge
    from rhlens.models.hf import load_hf_model, load_local_tokenizer

    monkeypatch.setattr("builtins.input", lambda *args: "y")  # a user (or a pipe) answering yes
    folder, _ = save_hf("llama")
    marker = folder.parent / "MARKER"
    write_code_folder(folder, marker)
    for load in (load_local_tokenizer, load_hf_checkpoint, load_bridge, load_hf_model):
        with pytest.raises(CheckpointError, match="auto_map.*never runs code"):
            load(folder)
    assert not marker.exists()
