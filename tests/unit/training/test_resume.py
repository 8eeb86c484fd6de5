"""An interrupted run resumed from its last checkpoint equals an uninterrupted run."""

import json

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
    # the finished run's curve is read back from its log, written at float32 precision
    assert again.loss_curve == pytest.approx(first.loss_curve, abs=1e-6)
    assert again.final_checkpoint == first.final_checkpoint


def test_resume_rejects_a_changed_config_or_data(build_model, examples, tmp_path):
    train(build_model(), examples, TrainConfig(steps=2, **FAST), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"differs from this one in: config\.lr: 0\.003 -> 0\.01; total_steps: 2 -> 4\."):
        train(build_model(), examples, TrainConfig(steps=4, **{**FAST, "lr": 1e-2}, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"differs from this one in: total_steps: 2 -> 4\."):
        train(build_model(), examples, TrainConfig(steps=4, **FAST, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"differs from this one in: data_fingerprint: '[0-9a-f]+' -> '[0-9a-f]+'\."):
        train(build_model(), examples[:12], TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)


def _as_written_before_run_records(out_dir):
    """Turn a run folder into one written by rhlens before run records and checksums (format 1)."""
    (out_dir / "rhlens_run.json").unlink()
    for ckpt in (out_dir / "checkpoints").iterdir():
        (ckpt / "checksums.json").unlink()
        path = ckpt / "trainer" / "state.json"
        state = json.loads(path.read_text())
        for key in ("run_id", "run_identity"):
            del state[key]
        path.write_text(json.dumps({**state, "version": 1}))


def test_resume_of_a_folder_without_run_record_checks_the_checkpoint(build_model, examples, tmp_path):
    """Folders written before rhlens_run.json existed are checked against their checkpoint's state."""
    train(build_model(), examples, TrainConfig(steps=2, **FAST), out_dir=tmp_path)
    _as_written_before_run_records(tmp_path)
    with pytest.raises(ValueError, match=r"config changed \(lr: 0\.003 -> 0\.01\)"):
        train(build_model(), examples, TrainConfig(steps=2, **{**FAST, "lr": 1e-2}, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match="2-step run and this config asks for 4 steps"):
        train(build_model(), examples, TrainConfig(steps=4, **FAST, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match="training examples differ"):
        train(build_model(), examples[:12], TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match="already holds a training run.*resume=True"):
        train(build_model(), examples, TrainConfig(steps=2, **FAST), out_dir=tmp_path)


def test_resume_without_checkpoint_starts_fresh(build_model, examples, tmp_path):
    with pytest.warns(UserWarning, match="no complete checkpoint"):
        result = train(build_model(), examples, TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)
    assert len(result.loss_curve) == 2


def test_keep_last_prunes_old_checkpoints(build_model, examples, tmp_path):
    train(build_model(), examples, TrainConfig(steps=6, save_every=1, keep_last=2, **FAST), out_dir=tmp_path)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step-00000005", "step-00000006"]
