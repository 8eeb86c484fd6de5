"""``rhlens.train`` refuses what would train silently wrong (issue 22 items 12 and 16): invalid
examples, and ``TrainConfig`` numbers of the wrong kind."""

import dataclasses

import pytest

import rhlens
from rhlens.training import TrainConfig


@pytest.mark.parametrize("change, message", [
    ({"answer": ""}, "answer must be a non-empty string"),
    ({"answer_spans": ((0, 10_000),)}, r"answer_spans\[0\]=\(0, 10000\) is empty or outside the prompt"),
])
def test_train_validates_examples_first(build_model, examples, change, message):
    model = build_model()
    bad = dataclasses.replace(examples[3], **change)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=rf"example 3 .*is invalid: .*{message}"):
        rhlens.train(model, [*examples[:3], bad], TrainConfig(steps=1, batch_size=2, progress=False))
    assert all((v == before[k]).all() for k, v in model.state_dict().items())


def test_train_refuses_a_dict_example_naming_its_index(build_model, examples):
    with pytest.raises(TypeError, match=r"examples\[1\] is a dict, not an rhlens.tasks.Example"):
        rhlens.train(build_model(), [examples[0], examples[1].to_dict()], TrainConfig(steps=1, batch_size=2, progress=False))


@pytest.mark.parametrize("kw, message", [
    ({"steps": 2.5}, "steps=2.5: must be a whole number, got float"),
    ({"steps": True}, "steps=True: must be a whole number, got bool"),
    ({"batch_size": 4.0}, "batch_size=4.0: must be a whole number"),
    ({"lr": "1e-3"}, "lr='1e-3': must be a finite number, got str"),
    ({"lr": float("nan")}, "lr=nan: must be a finite number"),
    ({"resume": "no"}, "resume='no': must be True or False"),
])
def test_train_config_refuses_numbers_of_the_wrong_kind(kw, message):
    with pytest.raises(TypeError, match=message.replace("(", r"\(")):
        TrainConfig(**kw)
    with pytest.raises(ValueError, match=f"run.toml: TrainConfig.{message}"):
        TrainConfig.from_dict(kw, source="run.toml")
