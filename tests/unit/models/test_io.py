"""save_model / load_model: bit-identical round trips, atomic replacement, clear errors."""

import json

import pytest
import torch

from rhlens.adapter import record_weight_processing, weight_processing
from rhlens.models import load_model, save_model, tiny_gpt2, tiny_llama
from rhlens.models.io import MANIFEST_FILE, WEIGHTS_FILE

TEXT = "The sky is blue . The grass is green ."


@pytest.mark.parametrize("build, kw", [(tiny_llama, {}), (tiny_llama, {"n_key_value_heads": 2}), (tiny_gpt2, {})])
def test_round_trip_bit_identical(tmp_path, tok, build, kw):
    model = build(tokenizer=tok, **kw)
    record_weight_processing(model, fold_ln=False, center_writing_weights=False, center_unembed=False)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    tokens = model.to_tokens([TEXT, "Where is Mary ?"])
    assert torch.equal(tokens, again.to_tokens([TEXT, "Where is Mary ?"]))
    with torch.no_grad():
        assert torch.equal(model(tokens), again(tokens))
    assert weight_processing(again) == weight_processing(model)
    assert again.tokenizer.padding_side == model.tokenizer.padding_side
    assert again.cfg.n_key_value_heads == model.cfg.n_key_value_heads
    assert not again.training


def test_no_pickle_and_rotary_tables_rebuilt(tmp_path, tok):
    model = tiny_llama(tokenizer=tok, rotary_base=50000)
    save_model(model, tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert not any(f.endswith((".bin", ".pt", ".pkl", ".pth")) for f in files)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m" / WEIGHTS_FILE), "pt") as fh:
        assert not any(k.endswith(("rotary_sin", "rotary_cos")) for k in fh.keys())
    manifest = json.loads((tmp_path / "m" / MANIFEST_FILE).read_text())
    assert manifest["config"]["dtype"] == "float32" and manifest["config"]["rotary_base"] == 50000
    again = load_model(tmp_path / "m")
    for a, b in zip(model.blocks, again.blocks):
        assert torch.equal(a.attn.rotary_sin, b.attn.rotary_sin)
        assert torch.equal(a.attn.rotary_cos, b.attn.rotary_cos)


def test_dtype_override_and_seed_not_reapplied(tmp_path, tok):
    model = tiny_llama(tokenizer=tok, seed=123)
    save_model(model, tmp_path / "m")
    torch.manual_seed(7)
    expected = torch.rand(1)
    torch.manual_seed(7)
    again = load_model(tmp_path / "m", dtype=torch.float64)
    assert torch.equal(torch.rand(1), expected)  # loading did not reseed the global RNG
    assert again.W_E.dtype == torch.float64
    assert torch.equal(again.W_E.float(), model.W_E)


def test_replaces_existing_model_only_when_complete(tmp_path, tok, monkeypatch):
    first, second = tiny_llama(tokenizer=tok, seed=1), tiny_llama(tokenizer=tok, seed=2)
    save_model(first, tmp_path / "m")
    import rhlens.models.io as io

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(io, "_tensors_to_save", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(second, tmp_path / "m")
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary left behind
    assert torch.equal(load_model(tmp_path / "m").W_E, first.W_E)  # old model intact
    save_model(second, tmp_path / "m")
    assert torch.equal(load_model(tmp_path / "m").W_E, second.W_E)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_refuses_to_replace_foreign_folder(tmp_path, tok):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an rhlens model folder"):
        save_model(tiny_llama(tokenizer=tok), tmp_path / "data")
    assert (tmp_path / "data" / "notes.txt").read_text() == "keep me"


def test_model_without_tokenizer(tmp_path):
    from rhlens.adapter.native import new_model

    model = new_model(dict(n_layers=1, d_model=16, n_heads=2, d_head=8, n_ctx=8, d_vocab=10, act_fn="relu"), tokenizer=None)
    save_model(model, tmp_path / "m")
    again = load_model(tmp_path / "m")
    tokens = torch.tensor([[1, 2, 3]])
    assert again.tokenizer is None and torch.equal(model(tokens), again(tokens))


def test_errors_name_the_missing_file(tmp_path, tok):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_model(tmp_path / "nope")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="rhlens_model.json is missing.*load_hf_checkpoint"):
        load_model(tmp_path / "hf")
    save_model(tiny_llama(tokenizer=tok), tmp_path / "m")
    (tmp_path / "m" / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match="tokenizer.json is missing"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / WEIGHTS_FILE).unlink()
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        load_model(tmp_path / "m")


def test_mismatched_weights_and_config(tmp_path, tok):
    save_model(tiny_llama(tokenizer=tok, n_layers=1), tmp_path / "a")
    save_model(tiny_llama(tokenizer=tok, n_layers=2), tmp_path / "b")
    (tmp_path / "b" / WEIGHTS_FILE).replace(tmp_path / "a" / WEIGHTS_FILE)
    with pytest.raises(ValueError, match="does not fit"):
        load_model(tmp_path / "a")


def test_rejects_other_objects(tmp_path):
    with pytest.raises(TypeError, match="save_model saves models rhlens built .*got Linear"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "m")


@pytest.mark.slow
def test_a_bridge_rhlens_built_round_trips_and_a_foreign_one_is_refused(tmp_path, tok):
    """as_bridge's bridge saves in rhlens's format (it remembers its config); a bridge booted on a Hugging
    Face folder is refused with advice (keep the folder), and that folder reloads with equal logits."""
    from rhlens.models import as_bridge, load_bridge
    from rhlens.models.bridge import hf_llama_from_hooked

    model = tiny_llama(tokenizer=tok, n_key_value_heads=2, seed=0)
    tokens = model.to_tokens("the sky is blue")
    save_model(as_bridge(model), tmp_path / "m")
    torch.testing.assert_close(load_model(tmp_path / "m")(tokens), model(tokens), atol=1e-5, rtol=1e-5)
    hf_llama_from_hooked(model).save_pretrained(tmp_path / "hf")
    model.tokenizer.save_pretrained(tmp_path / "hf")
    again = load_bridge(tmp_path / "hf")
    with pytest.raises(TypeError, match=r"not built by rhlens .*keep the Hugging Face folder"):
        save_model(again, tmp_path / "m2")
    torch.testing.assert_close(again(tokens), model(tokens), atol=1e-4, rtol=1e-4)


def test_load_model_never_runs_code_from_the_folder(tmp_path, tok, monkeypatch):
    from rhlens.models import CheckpointError
    from tests.unit.models.test_hf import write_code_folder

    monkeypatch.setattr("builtins.input", lambda *args: "y")
    folder = save_model(tiny_llama(tokenizer=tok), tmp_path / "m")
    marker = tmp_path / "MARKER"
    write_code_folder(folder, marker)
    with pytest.raises(CheckpointError, match="auto_map.*never runs code"):
        load_model(folder)
    assert not marker.exists()
