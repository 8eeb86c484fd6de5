import json

import pytest
import torch

from rhlens.adapter.native import model_state
from rhlens.training import NonFiniteLossError, TrainConfig, latest_checkpoint, train
from rhlens.models import load_model
from rhlens.training.lora import has_lora

FAST = dict(progress=False, batch_size=4, lr=3e-3)


def _params(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_loss_decreases_and_result_fields(build_model, examples):
    model = build_model()
    result = train(model, examples, TrainConfig(steps=12, **FAST))
    assert len(result.loss_curve) == len(result.lr_curve) == result.steps == 12
    assert result.losses[-3:].mean() < result.losses[:3].mean()
    assert result.final_checkpoint is None and result.tokens_seen > 0
    assert not model.training  # tiny_llama comes in eval mode and goes back to it


def test_attention_only_updates_only_attention(build_model, examples):
    model = build_model()
    before = {k: v.clone() for k, v in model_state(model).items()}  # TransformerLens names on either model class
    train(model, examples, TrainConfig(steps=2, trainable="attention", **FAST))
    after = model_state(model)
    for name, value in after.items():
        changed = not torch.equal(value, before[name])
        if ".attn.W_" in name:
            assert changed, name
        elif ".attn." not in name:
            assert not changed, name
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_lora_run_leaves_an_ordinary_model(build_model, examples, tmp_path):
    model = build_model(n_key_value_heads=2)
    keys = set(model.state_dict())
    before = {k: v.clone() for k, v in model_state(model).items()}
    result = train(model, examples, TrainConfig(steps=3, trainable="lora", lora_rank=2, **FAST), out_dir=tmp_path)
    assert not has_lora(model) and set(model.state_dict()) == keys
    after = model_state(model)
    assert not torch.equal(after["blocks.0.attn.W_Q"], before["blocks.0.attn.W_Q"])
    assert torch.equal(after["blocks.0.mlp.W_in"], before["blocks.0.mlp.W_in"])
    assert (result.final_checkpoint / "trainer" / "lora.safetensors").exists()
    loaded = load_model(result.model_dir)
    tokens = torch.tensor([[1, 5, 6, 7, 8]])
    assert torch.allclose(loaded(tokens), model(tokens), atol=1e-6)


@pytest.mark.parametrize("change", [dict(grad_accum_steps=2), dict(padding_side="left"), dict(fused_attention=False)])
def test_equivalent_runs_give_equal_weights(build_model, examples, change):
    """Accumulation, padding side and the attention path do not change the trajectory."""
    base = build_model()
    train(base, examples, TrainConfig(steps=3, **FAST))
    other = build_model()
    train(other, examples, TrainConfig(steps=3, **FAST, **change))
    for (name, p), q in zip(base.named_parameters(), other.parameters()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_a_bridge_trains_eagerly_under_auto_and_fused_on_request(build_model, examples, monkeypatch):
    """On a TransformerBridge ``"auto"`` keeps the eager attention; ``fused_attention=True`` runs SDPA
    (rhlens.adapter.bridge_fused) and follows the same trajectory."""
    import torch.nn.functional as F

    from rhlens.models import as_bridge

    calls = []
    sdpa = F.scaled_dot_product_attention
    monkeypatch.setattr(F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or sdpa(*a, **k))
    runs = {}
    for fused in ("auto", True):
        model = as_bridge(build_model(n_key_value_heads=2))
        calls.clear()
        train(model, examples, TrainConfig(steps=3, fused_attention=fused, **FAST))
        runs[fused] = (len(calls), model)
    assert runs["auto"][0] == 0 and runs[True][0] > 0
    for (name, p), q in zip(runs["auto"][1].named_parameters(), runs[True][1].parameters()):
        assert torch.allclose(p, q, atol=1e-5), name


def test_heldout_eval_and_metrics_log(build_model, examples, tmp_path):
    model = build_model()
    result = train(model, examples[:16], TrainConfig(steps=4, eval_every=2, **FAST), eval_examples=examples[16:], out_dir=tmp_path)
    assert [r["step"] for r in result.eval_curve] == [2, 4]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == [1, 2, 3, 4]
    assert {"lr", "grad_norm", "tokens_per_s"} <= set(lines[0])
    assert any("eval_loss" in r for r in lines)


def test_custom_eval_fn(build_model, examples):
    model = build_model()
    calls = []

    def eval_fn(m):
        calls.append(m.training)
        return {"custom": 1.0}

    result = train(model, examples, TrainConfig(steps=2, eval_every=1, **FAST), eval_fn=eval_fn)
    assert calls == [False, False] and result.eval_curve[-1] == {"step": 2, "custom": 1.0}


def test_nan_loss_names_the_step_and_keeps_the_last_checkpoint(build_model, examples, tmp_path):
    model = build_model()

    def poison(m):
        with torch.no_grad():
            m.unembed.W_U.fill_(float("nan"))
        return 0.0

    config = TrainConfig(steps=6, save_every=2, eval_every=3, **FAST)
    with pytest.raises(NonFiniteLossError, match=r"nan at step 4.*step-00000002") as err:
        train(model, examples, config, out_dir=tmp_path, eval_fn=poison)
    assert err.value.step == 4
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.step == 2 and ckpt.path == err.value.last_checkpoint


def test_out_dir_required_for_checkpoints(build_model, examples):
    with pytest.raises(ValueError, match="out_dir"):
        train(build_model(), examples, TrainConfig(steps=1, save_every=1, **FAST))


def test_too_long_example_is_an_error_naming_it(build_model, examples):
    model = build_model(n_ctx=30)
    with pytest.raises(ValueError, match=r"training example 0 has \d+ tokens but the model's context is 30"):
        train(model, examples, TrainConfig(steps=1, **FAST))
    train(model, examples, TrainConfig(steps=1, truncation="left", **FAST))


def test_task_metric_uses_rhlens_evaluate(build_model, examples):
    model = build_model()
    result = train(model, examples[:8], TrainConfig(steps=1, eval_metric="task", eval_batch_size=4, eval_max_new_tokens=4, **FAST), eval_examples=examples[8:12])
    score = result.eval_curve[-1]["eval_score"]
    assert 0.0 <= score <= 1.0


def test_wandb_is_not_imported_unless_asked(build_model, examples):
    import sys

    sys.modules.pop("wandb", None)
    train(build_model(), examples, TrainConfig(steps=1, **FAST))
    assert "wandb" not in sys.modules


def test_rhlens_train_is_the_function_whatever_the_import_order(build_model, examples):
    import rhlens
    import rhlens.training as package

    assert rhlens.train is package.train
    result = rhlens.train(build_model(), examples, TrainConfig(steps=1, **FAST))
    assert len(result.loss_curve) == 1
