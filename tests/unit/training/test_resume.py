"""An interrupted run resumed from its last checkpoint equals an uninterrupted run."""

import pytest
import torch

from rhlens.training import TrainConfig, latest_checkpoint, train

FAST = dict(progress=False, batch_size=4, lr=3e-3, warmup_steps=2, weight_decay=0.01)


class Interrupt(Exception):
    pass


def _interrupt_after(step_to_stop: int):
    def eval_fn(model):
        raise Interrupt()

    return TrainConfig(steps=6, save_every=2, eval_every=step_to_stop, **FAST), eval_fn


@pytest.mark.parametrize("trainable", ["all", "lora"])
def test_resume_equals_uninterrupted(build_model, examples, tmp_path, trainable):
    extra = dict(trainable=trainable, lora_rank=2)
    reference_model = build_model()
    reference = train(reference_model, examples, TrainConfig(steps=6, **FAST, **extra))

    model = build_model()
    config, stop = _interrupt_after(3)
    config = config.replace(**extra)
    with pytest.raises(Interrupt):
        train(model, examples, config, out_dir=tmp_path, eval_fn=stop)
    assert latest_checkpoint(tmp_path).step == 2

    fresh = build_model()  # a new process would rebuild the same base model
    resumed = train(fresh, examples, config.replace(resume=True, eval_every=0), out_dir=tmp_path)
    assert resumed.loss_curve == pytest.approx(reference.loss_curve, abs=1e-6)
    assert resumed.lr_curve == pytest.approx(reference.lr_curve)
    for (name, p), q in zip(fresh.named_parameters(), reference_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert resumed.final_checkpoint == latest_checkpoint(tmp_path).path
    assert latest_checkpoint(tmp_path).step == 6


def test_resume_of_a_finished_run_does_nothing(build_model, examples, tmp_path):
    config = TrainConfig(steps=2, **FAST)
    first = train(build_model(), examples, config, out_dir=tmp_path)
    model = build_model()
    again = train(model, examples, config.replace(resume=True), out_dir=tmp_path)
    assert again.loss_curve == first.loss_curve and again.final_checkpoint == first.final_checkpoint


def test_resume_rejects_a_changed_config_or_data(build_model, examples, tmp_path):
    train(build_model(), examples, TrainConfig(steps=2, **FAST), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"config changed \(lr: 0\.003 -> 0\.01\)"):
        train(build_model(), examples, TrainConfig(steps=4, **{**FAST, "lr": 1e-2}, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match="2-step run and this config asks for 4 steps"):
        train(build_model(), examples, TrainConfig(steps=4, **FAST, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match="training examples differ"):
        train(build_model(), examples[:12], TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)


def test_resume_without_checkpoint_starts_fresh(build_model, examples, tmp_path):
    with pytest.warns(UserWarning, match="no complete checkpoint"):
        result = train(build_model(), examples, TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)
    assert len(result.loss_curve) == 2


def test_keep_last_prunes_old_checkpoints(build_model, examples, tmp_path):
    train(build_model(), examples, TrainConfig(steps=6, save_every=1, keep_last=2, **FAST), out_dir=tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000005", "step-00000006"]
