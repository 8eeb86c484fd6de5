"""as_bridge / load_bridge: same logits and same analyzer hooks as the HookedTransformer, offline."""

import os

import pytest
import torch

from rhlens.adapter import architecture, hook_name, model_kind, weight_processing
from rhlens.models import as_bridge, load_bridge, load_hf_checkpoint, tiny_llama

os.environ["HF_HUB_OFFLINE"] = "1"

TEXTS = ["The sky is blue . The grass is green .", "Where is Mary ? Answer : garden"]
KINDS = ("q", "k", "v", "rot_q", "rot_k", "attn_scores", "pattern", "z")


@pytest.fixture(params=[None, 2, 1], ids=["mha", "gqa2", "mqa"])
def pair(request, tok):
    model = tiny_llama(tokenizer=tok, n_key_value_heads=request.param, seed=3)
    return model, as_bridge(model)


def test_logits_match(pair):
    model, bridge = pair
    assert model_kind(bridge) == "bridge"
    tokens = model.to_tokens(TEXTS[0])
    with torch.no_grad():
        assert (bridge(tokens) - model(tokens)).abs().max().item() < 1e-4
    a, b = architecture(model), architecture(bridge)
    assert a.differences(b) == []


def test_left_padded_batch_matches(pair):
    model, bridge = pair
    tokens = model.to_tokens(TEXTS, padding_side="left")
    mask = (tokens != model.tokenizer.pad_token_id).long()
    with torch.no_grad():
        diff = (bridge(tokens, attention_mask=mask) - model(tokens, attention_mask=mask))[mask.bool()]
    assert diff.abs().max().item() < 1e-4


def test_analyzer_hooks_same_shapes_and_values(pair):
    model, bridge = pair
    tokens = model.to_tokens(TEXTS[0])
    names = [hook_name(k, layer) for k in KINDS for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, ch = model.run_with_cache(tokens, names_filter=names)
        _, cb = bridge.run_with_cache(tokens, names_filter=names)
    for name in names:
        a, b = ch[name], cb[name]
        assert a.shape == b.shape, name
        if name.endswith("hook_attn_scores"):
            # Masked (future) positions: -inf in HookedTransformer, finfo.min in the bridge.
            visible = torch.isfinite(a)
            assert torch.equal(visible, b > torch.finfo(b.dtype).min / 2), name
            a, b = a[visible], b[visible]
        assert (a - b).abs().max().item() < 1e-4, name


def test_hook_edit_changes_bridge_output(pair):
    _, bridge = pair
    tokens = bridge.to_tokens(TEXTS[0])

    def zero_head0(z, hook):
        z[:, :, 0] = 0
        return z

    with torch.no_grad():
        clean = bridge(tokens)
        with bridge.hooks(fwd_hooks=[(hook_name("z", 0), zero_head0)]):
            edited = bridge(tokens)
    assert (clean - edited).abs().max() > 1e-4


def test_chunked_prefill_with_cache_matches_full(pair):
    from transformers import DynamicCache

    model, bridge = pair
    tokens = model.to_tokens(TEXTS, padding_side="left")
    mask = (tokens != model.tokenizer.pad_token_id).long()
    with torch.no_grad():
        full = bridge(tokens, attention_mask=mask)
        cache, outs, shapes = DynamicCache(), [], []
        for start, end in [(0, 4), (4, 7), (7, tokens.shape[1])]:
            with bridge.hooks(fwd_hooks=[(hook_name("pattern", 1), lambda t, hook: shapes.append(t.shape))]):
                outs.append(bridge(tokens[:, start:end], attention_mask=mask[:, :end], cache=cache, use_cache=True))
    assert cache.get_seq_length() == tokens.shape[1]
    assert shapes[1][-2:] == (3, 7)  # patterns span cached + new keys
    diff = (torch.cat(outs, 1) - full)[mask.bool()]
    assert diff.abs().max().item() < 1e-4


def test_weight_processing_record_is_carried(tok):
    from rhlens.adapter import record_weight_processing

    model = tiny_llama(tokenizer=tok)
    record_weight_processing(model, fold_ln=False, center_writing_weights=False, center_unembed=False)
    assert weight_processing(as_bridge(model)) == weight_processing(model)


def test_folded_layer_norm_model_converts(save_hf):
    folder, hf = save_hf("llama", n_kv=2)
    model = load_hf_checkpoint(folder, fold_ln=True)
    bridge = as_bridge(model)
    tokens = model.to_tokens(TEXTS[0])
    with torch.no_grad():
        assert (bridge(tokens) - model(tokens)).abs().max().item() < 1e-4
        assert (bridge(tokens) - hf(tokens).logits).abs().max().item() < 1e-4  # folding keeps the logits


def test_qwen2_biases_convert(save_hf):
    folder, hf = save_hf("qwen2", n_kv=2)
    model = load_hf_checkpoint(folder)
    bridge = as_bridge(model)
    tokens = model.to_tokens(TEXTS[0])
    with torch.no_grad():
        assert (bridge(tokens) - hf(tokens).logits).abs().max().item() < 1e-4


def test_load_bridge_from_folder(save_hf):
    folder, hf = save_hf("mistral", n_kv=2)
    bridge = load_bridge(folder)
    tokens = bridge.to_tokens(TEXTS[0])
    with torch.no_grad():
        assert (bridge(tokens) - hf(tokens).logits).abs().max().item() < 1e-4


@pytest.mark.realdata
def test_stories260k_bridge(realdata):
    folder = realdata / "models" / "stories260K"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    model = load_hf_checkpoint(folder)
    bridge = as_bridge(model)
    direct = load_bridge(folder)
    tokens = model.to_tokens("Once upon a time, there was a little girl named Lily.")
    with torch.no_grad():
        ref = model(tokens)
        assert (bridge(tokens) - ref).abs().max().item() < 1e-4
        assert (direct(tokens) - ref).abs().max().item() < 1e-4


def test_cached_generation_matches_hooked(tok):
    model = tiny_llama(tokenizer=tok, n_key_value_heads=2, seed=3)
    bridge = as_bridge(model)
    tokens = model.to_tokens(TEXTS[0] + " The sky")
    kw = dict(max_new_tokens=6, do_sample=False, verbose=False, return_type="tokens")
    with torch.no_grad():
        expected = model.generate(tokens, use_past_kv_cache=True, **kw)
        assert torch.equal(bridge.generate(tokens, use_past_kv_cache=True, **kw), expected)


def test_save_hf_checkpoint_round_trip_and_refusals(tok, tmp_path):
    """save_hf_checkpoint: bfloat16 storage loads back as the rounded weights; a nonzero b_U and a
    folder that is not a checkpoint are refused, naming why; an existing checkpoint is replaced."""
    from rhlens.models import save_hf_checkpoint

    model = tiny_llama(tokenizer=tok, n_key_value_heads=2)
    folder = save_hf_checkpoint(model, tmp_path / "hf", dtype=torch.bfloat16)
    tokens = model.to_tokens("The sky is blue .")
    again = load_hf_checkpoint(folder)
    rounded = tiny_llama(tokenizer=tok, n_key_value_heads=2)
    with torch.no_grad():
        for p, q in zip(rounded.parameters(), model.parameters()):
            p.copy_(q.to(torch.bfloat16).float())
    torch.testing.assert_close(again(tokens), rounded(tokens), rtol=0, atol=1e-5)
    assert save_hf_checkpoint(model, folder) == folder  # a checkpoint folder is replaced
    torch.testing.assert_close(load_hf_checkpoint(folder)(tokens), model(tokens), rtol=0, atol=1e-5)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not a Hugging Face checkpoint folder"):
        save_hf_checkpoint(model, tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    biased = tiny_llama(tokenizer=tok)
    b_u = [p for n, p in biased.named_parameters() if n.endswith("b_U")]
    if model_kind(biased) == "bridge":  # a bridge's Hugging Face lm_head holds no bias to set
        assert b_u == [] and not any(n.startswith("lm_head") and n.endswith("bias") for n, _ in biased.named_parameters())
        return
    with torch.no_grad():
        b_u[0].fill_(0.5)
    with pytest.raises(ValueError, match="nonzero unembedding bias"):
        save_hf_checkpoint(biased, tmp_path / "biased")
    assert not (tmp_path / "biased").exists()
