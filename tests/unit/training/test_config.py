import json

import pytest

from rhlens.training import TrainConfig


def test_defaults_are_valid_and_round_trip():
    cfg = TrainConfig()
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("lr", 0.0, "positive"),
        ("trainable", "mlp", "one of"),
        ("truncation", "right", "keep the end"),
        ("batch_size", 6, "grad_accum_steps"),
        ("lora_targets", ("q", "x"), "subset"),
        ("min_lr_ratio", 2.0, "[0, 1]"),
    ],
)
def test_bad_values_name_the_field(field, value, words):
    kwargs = {field: value}
    if field == "batch_size":
        kwargs["grad_accum_steps"] = 4
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field}=") as err:
        TrainConfig(**kwargs)
    assert words in str(err.value)


def test_toml_with_train_table(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\nlr = 3e-4\nsteps = 10\ntrainable = "lora"\nbetas = [0.9, 0.95]\n')
    cfg = TrainConfig.from_file(path)
    assert (cfg.lr, cfg.steps, cfg.trainable, cfg.betas) == (3e-4, 10, "lora", (0.9, 0.95))


def test_json_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"lr": 1e-3, "learning_rate": 1e-3}))
    with pytest.raises(ValueError, match=r"run\.json: unknown TrainConfig key\(s\) learning_rate"):
        TrainConfig.from_file(path)


def test_bad_value_in_file_names_file(tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"padding_side": "middle"}))
    with pytest.raises(ValueError, match=r"run\.json: TrainConfig\.padding_side"):
        TrainConfig.from_file(path)


def test_micro_batch_and_total_steps():
    cfg = TrainConfig(batch_size=8, grad_accum_steps=2)
    assert cfg.micro_batch_size(world_size=2) == 2
    with pytest.raises(ValueError, match="not divisible"):
        cfg.micro_batch_size(world_size=3)
    assert TrainConfig(batch_size=8, epochs=2.0).total_steps(20) == 5
    assert TrainConfig(steps=7).total_steps(20) == 7
