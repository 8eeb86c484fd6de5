"""The trainer's run identity covers the starting weights (issue 22 item 6): resuming a run from a
base of the same architecture but other weights is refused; the same base resumes."""

import pytest

from rhlens.training import TrainConfig, train
from rhlens.training.run_folder import RunFolderError

FAST = {"batch_size": 4, "lr": 3e-3, "progress": False}


def test_a_swapped_base_of_the_same_shape_does_not_resume(build_model, examples, tmp_path):
    config = TrainConfig(steps=4, save_every=2, **FAST)
    train(build_model(seed=0), examples, config, out_dir=tmp_path)
    with pytest.raises(RunFolderError, match=r"holds another training run .*model\.weights: '[0-9a-f]+' -> '[0-9a-f]+'"):
        train(build_model(seed=1), examples, config.replace(resume=True), out_dir=tmp_path)
    resumed = train(build_model(seed=0), examples, config.replace(resume=True), out_dir=tmp_path)
    assert resumed.steps == 4
