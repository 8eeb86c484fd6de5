"""TransformerLens-keyed weights in the installed TransformerLens's model class, exactly.

The reference forward below is written here from the equations (RMSNorm, rotary halves, grouped
keys, TransformerLens's gated MLP ``(act(x W_gate) * (x W_in) + b_in) W_out + b_out``, ``W_U + b_U``);
it shares no code with rhlens. The same test runs on TransformerLens 3 (a HookedTransformer, then
``as_bridge``) and 4 (a bridge over a Hugging Face Llama).
"""

import math

import pytest
import torch

from rhlens.adapter import model_kind
from rhlens.adapter.core import NATIVE_KIND
from rhlens.adapter.native import complete_config, model_config, model_from_state, model_state
from rhlens.models import as_bridge, tiny_gpt2, tiny_llama

TEXT = "The sky is blue . The grass is green ."


@pytest.fixture(scope="module")
def tok():
    from rhlens.models import word_level_tokenizer

    return word_level_tokenizer([TEXT])


def _rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * w


def _rotate(x, base):
    # x [batch, pos, head, d_head]; Llama rotates the two halves of d_head.
    pos, d = x.shape[1], x.shape[-1]
    inv = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    ang = torch.arange(pos, dtype=torch.float64)[:, None] * inv[None]
    cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None], torch.cat([ang.sin()] * 2, -1)[:, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def reference_llama(sd, cfg, tokens):
    sd = {k: v.double() for k, v in sd.items()}
    n, h, eps = cfg["n_heads"], cfg["d_head"], cfg["eps"]
    kv = "_" if cfg["n_key_value_heads"] else ""
    group = n // (cfg["n_key_value_heads"] or n)
    x = sd["embed.W_E"][tokens]
    p = tokens.shape[1]
    causal = torch.ones(p, p, dtype=torch.bool).tril()
    for l in range(cfg["n_layers"]):
        b = f"blocks.{l}."
        y = _rms(x, sd[b + "ln1.w"], eps)
        q = torch.einsum("bpm,nmh->bpnh", y, sd[b + "attn.W_Q"]) + sd[b + "attn.b_Q"]
        k = torch.einsum("bpm,nmh->bpnh", y, sd[b + f"attn.{kv}W_K"]) + sd[b + f"attn.{kv}b_K"]
        v = torch.einsum("bpm,nmh->bpnh", y, sd[b + f"attn.{kv}W_V"]) + sd[b + f"attn.{kv}b_V"]
        k, v = k.repeat_interleave(group, dim=2), v.repeat_interleave(group, dim=2)
        q, k = _rotate(q, cfg["rotary_base"]), _rotate(k, cfg["rotary_base"])
        scores = torch.einsum("bqnh,bknh->bnqk", q, k) / math.sqrt(h)
        pattern = scores.masked_fill(~causal, float("-inf")).softmax(-1)
        z = torch.einsum("bnqk,bknh->bqnh", pattern, v)
        x = x + torch.einsum("bqnh,nhm->bqm", z, sd[b + "attn.W_O"]) + sd[b + "attn.b_O"]
        if cfg.get("attn_only"):  # no MLP, no ln2
            continue
        y = _rms(x, sd[b + "ln2.w"], eps)
        post = torch.nn.functional.silu(y @ sd[b + "mlp.W_gate"]) * (y @ sd[b + "mlp.W_in"]) + sd[b + "mlp.b_in"]
        x = x + post @ sd[b + "mlp.W_out"] + sd[b + "mlp.b_out"]
    return _rms(x, sd["ln_final.w"], eps) @ sd["unembed.W_U"] + sd["unembed.b_U"]


def _every_bias_nonzero(state):
    gen = torch.Generator().manual_seed(0)
    out = dict(state)
    for key, value in state.items():
        if key.rsplit(".", 1)[-1].lstrip("_").startswith("b_"):
            out[key] = torch.randn(value.shape, generator=gen) * 0.3
    return out


@pytest.mark.parametrize("shape", [dict(), dict(n_key_value_heads=2), dict(d_model=128, n_heads=12, d_head=32, n_layers=1)],
                         ids=["mha", "gqa", "heads-not-tiling-d_model"])
def test_every_bias_nonzero_converts_exactly_and_round_trips(tok, shape):
    """Item 7: b_in (after act(gate) * up) folds into down_proj's bias, b_U becomes lm_head.bias, the
    base's 12 x 32 heads on d_model 128 convert; logits equal the reference to float32 rounding."""
    fresh = tiny_llama(tokenizer=tok, seed=1, **shape)
    fields = {k: v for k, v in model_config(fresh).items() if k in ("n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_mlp", "act_fn",
              "normalization_type", "positional_embedding_type", "rotary_base", "gated_mlp", "final_rms", "original_architecture",
              "rotary_dim", "d_vocab", "n_key_value_heads", "eps")}
    state = _every_bias_nonzero(model_state(fresh))
    assert any(k.endswith("mlp.b_in") for k in state) and "unembed.b_U" in state
    model = model_from_state(fields, state, tokenizer=tok, padding_side="left")
    assert model_kind(model) == NATIVE_KIND
    tokens = model.to_tokens(TEXT)
    expected = reference_llama(state, complete_config(fields), tokens)
    with torch.no_grad():
        assert (model(tokens).double() - expected).abs().max().item() < 1e-4
        bridge = as_bridge(model)
        assert (bridge(tokens).double() - expected).abs().max().item() < 1e-4
        # the round trip computes the same function (b_in now lives in b_out)
        again = model_from_state(fields, model_state(bridge), tokenizer=tok, padding_side="left")
        assert (again(tokens).double() - expected).abs().max().item() < 1e-4


def test_gpt2_shape_converts(tok):
    model = tiny_gpt2(tokenizer=tok, seed=2)
    tokens = model.to_tokens(TEXT)
    with torch.no_grad():
        assert (as_bridge(model)(tokens) - model(tokens)).abs().max().item() < 1e-4


def test_unconvertible_configs_are_refused_naming_the_field(tok):
    """What a Hugging Face Llama cannot compute exactly is refused (on TransformerLens 4 already at build time)."""
    with pytest.raises(ValueError, match=r"normalization_type='LN' \(need 'RMS' or 'RMSPre'\)"):
        as_bridge(tiny_llama(tokenizer=tok, normalization_type="LN"))
    with pytest.raises(ValueError, match=r"rotary_adjacent_pairs=True"):
        as_bridge(tiny_llama(tokenizer=tok, rotary_adjacent_pairs=True))


def test_attention_only_llama_converts_exactly(tok):
    """attn_only=True: on TransformerLens 4 a Hugging Face Llama with MLPs of width 0 (they add exactly 0),
    with the seeded weights of TransformerLens 3's HookedTransformer; logits equal the reference."""
    from rhlens.adapter import architecture
    from rhlens.adapter.native import hooked_init_state

    model = tiny_llama(tokenizer=tok, attn_only=True, n_key_value_heads=2, seed=3)
    state, fields = model_state(model), model_config(model)
    assert model.cfg.attn_only and not any(".mlp." in k or ".ln2." in k for k in state)
    drawn = hooked_init_state(fields)  # on 3.x: what HookedTransformer itself drew from seed 3
    assert drawn.keys() == state.keys() and all(torch.equal(drawn[k], state[k]) for k in state)
    tokens = model.to_tokens(TEXT)
    expected = reference_llama(state, complete_config(fields), tokens)
    bridge = as_bridge(model)
    hf = bridge.original_model
    assert hf.config.intermediate_size == 0 and bridge.cfg.attn_only
    x = torch.randn(2, 3, fields["d_model"])
    with torch.no_grad():
        assert all(torch.equal(layer.mlp(x), torch.zeros_like(x)) for layer in hf.model.layers)
        logits = model(tokens).double()
        assert (logits - expected).abs().max().item() < 1e-5
        assert (bridge(tokens).double() - logits).abs().max().item() < 1e-5
        again = model_from_state(fields, model_state(bridge), tokenizer=tok, padding_side="left")
        assert (again(tokens).double() - logits).abs().max().item() < 1e-5
    assert architecture(model).differences(architecture(bridge)) == []
    with pytest.raises(ValueError, match=r"attn_only=True with learned positions"):
        as_bridge(tiny_gpt2(tokenizer=tok, attn_only=True))


def test_a_nonzero_up_or_gate_bias_is_refused(tok):
    from rhlens.adapter.layout import llama_from_hf, llama_to_hf
    from rhlens.adapter.native import _Namespace

    fresh = tiny_llama(tokenizer=tok, seed=1)
    ns = _Namespace(complete_config(model_config(fresh)))
    hf = llama_to_hf(_every_bias_nonzero(model_state(fresh)), ns)
    hf["model.layers.0.mlp.gate_proj.bias"] = torch.ones_like(hf["model.layers.0.mlp.gate_proj.bias"])
    with pytest.raises(ValueError, match=r"model.layers.0.mlp.gate_proj.bias is nonzero: TransformerLens's gated MLP has no bias inside"):
        llama_from_hf(hf, ns)


def test_a_bfloat16_file_loads_at_the_configs_float32(tok):
    """The embedded base stores bfloat16 tensors for a float32 model: b_in must fold into down_proj's
    bias at float32, not bfloat16 (on 4.x the base's logits differed from 3.x's by 4.8e-3)."""
    fresh = tiny_llama(tokenizer=tok, seed=1, d_mlp=256)
    fields = {k: v for k, v in model_config(fresh).items() if k in ("n_layers", "d_model", "n_heads", "d_head", "n_ctx", "d_mlp", "act_fn",
              "normalization_type", "positional_embedding_type", "rotary_base", "gated_mlp", "final_rms", "rotary_dim", "d_vocab", "eps")}
    state = {k: (v * 8 if k.endswith("mlp.b_in") else v).to(torch.bfloat16) for k, v in _every_bias_nonzero(model_state(fresh)).items()}
    model = model_from_state(fields, state, tokenizer=tok, padding_side="left")
    tokens = model.to_tokens(TEXT)
    expected = reference_llama({k: v.float() for k, v in state.items()}, complete_config(fields), tokens)
    with torch.no_grad():
        assert next(model.parameters()).dtype == torch.float32
        assert (model(tokens).double() - expected).abs().max().item() < 1e-4
