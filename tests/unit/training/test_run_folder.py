"""Issue 14: a run never deletes, prunes or replaces another run's files; damaged checkpoints are
detected (checksums) and resume falls back to the newest intact one."""

import json
import os

import pytest
import torch

from rhlens.training import TrainConfig, latest_checkpoint, train
from rhlens.training import checkpoint as ck
from rhlens.files import FolderInUseError
from rhlens.training.loop import LOCK_FILE
from rhlens.training.run_folder import RunFolderError

FAST = dict(progress=False, batch_size=4, lr=3e-3, warmup_steps=2, weight_decay=0.01)


def _snapshot(out_dir):
    """Every file under ``out_dir`` -> its bytes (but the lock file, which names its latest holder)."""
    files = (p for p in sorted(out_dir.rglob("*")) if p.is_file() and p.name != LOCK_FILE)
    return {p.relative_to(out_dir).as_posix(): p.read_bytes() for p in files}


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_refuses_foreign_out_dir(build_model, examples, tmp_path):
    first = train(build_model(), examples, TrainConfig(steps=4, save_every=2, keep_last=1, **FAST), out_dir=tmp_path)
    before = _snapshot(tmp_path)
    other = TrainConfig(steps=4, save_every=2, keep_last=1, **{**FAST, "lr": 1e-2})
    for config in (other, other.replace(resume=True)):
        with pytest.raises(RunFolderError, match=rf"out_dir {tmp_path} holds another training run .*config\.lr: 0\.003 -> 0\.01"):
            train(build_model(), examples, config, out_dir=tmp_path)
    with pytest.raises(RunFolderError, match="differs from this one in: model.d_mlp: 64 -> 96; model.parameter_shapes"):
        train(build_model(d_mlp=96), examples, TrainConfig(steps=4, save_every=2, **FAST), out_dir=tmp_path)
    with pytest.raises(RunFolderError, match="already holds this training run.*resume=True.*overwrite=True"):
        train(build_model(), examples, TrainConfig(steps=4, save_every=2, keep_last=1, **FAST), out_dir=tmp_path)
    assert _snapshot(tmp_path) == before  # nothing deleted, pruned or replaced
    assert first.final_checkpoint.is_dir()

    replaced = train(build_model(), examples, other.replace(overwrite=True), out_dir=tmp_path)
    assert replaced.final_checkpoint == latest_checkpoint(tmp_path).path and replaced.final_checkpoint.is_dir()
    assert json.loads((tmp_path / "rhlens_run.json").read_text())["identity"]["config"]["lr"] == 0.01
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4] and [r["lr"] for r in logged] == replaced.lr_curve


def test_a_second_run_into_a_folder_in_training_is_refused(build_model, examples, tmp_path):
    """Issue 22 item 4: while one run trains into ``out_dir``, a second one into it (even with
    ``overwrite=True``, which would delete the first one's checkpoints) is refused, naming the holder."""
    refused = []

    def second_run(model, batch):
        if not refused:
            before = _snapshot(tmp_path)
            with pytest.raises(FolderInUseError, match=rf"out_dir {tmp_path} is in use by another process \(pid {os.getpid()} ") as err:
                train(build_model(), examples, TrainConfig(steps=2, overwrite=True, **FAST), out_dir=tmp_path)
            refused.append(err.value)
            assert _snapshot(tmp_path) == before
        return torch.zeros(())

    first = train(build_model(), examples, TrainConfig(steps=4, save_every=2, **FAST), out_dir=tmp_path, extra_loss=second_run)
    assert len(refused) == 1 and first.steps == 4 and first.final_checkpoint.is_dir()
    again = train(build_model(), examples, TrainConfig(steps=4, save_every=2, resume=True, **FAST), out_dir=tmp_path)
    assert again.steps == 4  # the lock went with the first run


def test_resume_and_overwrite_resume_this_run_or_replace_another(build_model, examples, tmp_path):
    config = TrainConfig(steps=2, resume=True, overwrite=True, **FAST)
    train(build_model(), examples, config.replace(lr=1e-2, overwrite=False), out_dir=tmp_path)
    first = train(build_model(), examples, config, out_dir=tmp_path)  # another run: replaced
    assert [c.state["run_id"] for c in ck.list_checkpoints(tmp_path)] == [json.loads((tmp_path / "rhlens_run.json").read_text())["run_id"]]
    before = _snapshot(tmp_path)
    again = train(build_model(), examples, config, out_dir=tmp_path)  # this run, finished: resumed, nothing to do
    # the finished run's curve is read back from its log, written at float32 precision
    assert again.loss_curve == pytest.approx(first.loss_curve, abs=1e-6) and _snapshot(tmp_path) == before


def test_prune_deletes_only_this_runs_checkpoints(tmp_path):
    for step, run in [(2, "other"), (4, "mine"), (6, "mine"), (8, "other"), (10, "mine")]:
        trainer = ck.checkpoint_dir(tmp_path, step) / "trainer"
        trainer.mkdir(parents=True)
        (trainer / "state.json").write_text(json.dumps({"step": step, "run_id": run}))
    ck.prune_checkpoints(tmp_path, keep_last=1, run="mine")
    assert [c.step for c in ck.list_checkpoints(tmp_path)] == [2, 8, 10]


def test_same_step_checkpoint_is_not_replaced_silently(build_model, tmp_path):
    model = build_model()
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)

    def save(run):
        return ck.save_checkpoint(
            tmp_path, step=2, model=model, model_state=model.state_dict(), optimizer=optimizer,
            scheduler=scheduler, state={"run_id": run},
        )

    path = save("other")
    before = _snapshot(path)
    with pytest.raises(FileExistsError, match="checkpoint of another run .*refusing to replace it"):
        save("mine")
    assert _snapshot(path) == before
    with pytest.warns(UserWarning, match="replacing the earlier checkpoint .*step-00000002 of this run"):
        save("other")


def test_resume_into_another_architecture_leaves_model_untouched(build_model, examples, tmp_path):
    train(build_model(), examples, TrainConfig(steps=2, **FAST), out_dir=tmp_path)
    wider = build_model(d_mlp=96)  # embedding and attention tensors fit, the MLP's do not
    before = _weights(wider)
    with pytest.raises(RunFolderError, match="model.d_mlp: 64 -> 96"):
        train(wider, examples, TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)
    with pytest.raises(ValueError, match=r"shape mismatch.*blocks\.0\.mlp\.W_in \(32, 64\) in the checkpoint, \(32, 96\) in the model.*left unchanged"):
        ck.load_model_weights(latest_checkpoint(tmp_path).path / ck.MODEL_SUBDIR, wider)
    after = _weights(wider)
    assert all(torch.equal(before[k], after[k]) for k in before)


def _flip_a_bit(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x10  # inside the last tensor's bytes: the file still parses
    path.write_bytes(bytes(data))


def _edit_state(path, **changes):
    state_path = path / "trainer" / "state.json"
    state = json.loads(state_path.read_text())
    state.update(changes)
    state_path.write_text(json.dumps(state))


@pytest.mark.parametrize(
    "damage, problem",
    [
        (lambda p: _flip_a_bit(p / "model" / "model.safetensors"), "model/model.safetensors does not match its checksum"),
        (lambda p: _flip_a_bit(p / "trainer" / "optimizer.safetensors"), "trainer/optimizer.safetensors does not match"),
        (lambda p: _edit_state(p, tokens_seen=1), "trainer/state.json does not match its checksum"),
        (lambda p: _edit_state(p, step=5), "trainer/state.json says step 5 but the folder is step-00000006"),
    ],
    ids=["model-bits", "optimizer-bits", "state-edited", "step-edited"],
)
def test_checksums_catch_edits_and_flipped_bits(build_model, examples, tmp_path, damage, problem):
    config = TrainConfig(steps=6, save_every=2, **FAST)
    reference_model = build_model()
    reference = train(reference_model, examples, config, out_dir=tmp_path)
    damage(ck.checkpoint_dir(tmp_path, 6))
    model = build_model()
    with pytest.warns(UserWarning, match=rf"resuming from .*step-00000004 \(step 4\).*step-00000006: {problem}"):
        resumed = train(model, examples, config.replace(resume=True), out_dir=tmp_path)
    assert resumed.loss_curve == pytest.approx(reference.loss_curve, abs=1e-6)
    for (name, p), q in zip(model.named_parameters(), reference_model.parameters()):
        assert torch.allclose(p, q, atol=1e-6), name
    assert ck.checkpoint_problem(latest_checkpoint(tmp_path)) is None  # the damaged one was rewritten


def test_no_intact_checkpoint_is_an_error_naming_the_file(build_model, examples, tmp_path):
    train(build_model(), examples, TrainConfig(steps=2, **FAST), out_dir=tmp_path)
    _flip_a_bit(ck.checkpoint_dir(tmp_path, 2) / "model" / "model.safetensors")
    model = build_model()
    before = _weights(model)
    with pytest.raises(ck.DamagedCheckpointError, match=r"no intact checkpoint .*step-00000002: model/model.safetensors does not match"):
        train(model, examples, TrainConfig(steps=2, **FAST, resume=True), out_dir=tmp_path)
    assert all(torch.equal(before[k], v) for k, v in _weights(model).items())


@pytest.mark.parametrize("format_1", [False, True], ids=["checksummed", "format-1"])
def test_truncated_newest_checkpoint_falls_back(build_model, examples, tmp_path, format_1):
    config = TrainConfig(steps=4, save_every=2, **FAST)
    reference = train(build_model(), examples, config, out_dir=tmp_path)
    newest = ck.checkpoint_dir(tmp_path, 4)
    if format_1:  # written before checksums: only unreadable files can be detected
        for path in ck.list_checkpoints(tmp_path):
            (path.path / "checksums.json").unlink()
            _edit_state(path.path, version=1)
    weights = newest / "model" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.warns(UserWarning, match=r"resuming from .*step-00000002.*step-00000004: model/model.safetensors"):
        resumed = train(build_model(), examples, config.replace(resume=True), out_dir=tmp_path)
    assert resumed.loss_curve == pytest.approx(reference.loss_curve, abs=1e-6)
    assert resumed.final_checkpoint == newest and ck.checkpoint_problem(latest_checkpoint(tmp_path)) is None
