"""The base-model recipe file."""

import pytest

from rhlens.tools.pretrain.recipe import default_recipe_path, load_recipe, recipe_from_dict


def test_shipped_recipe_loads():
    recipe = load_recipe(default_recipe_path())
    assert recipe.name == "rhlens-base"
    assert [s.context_tokens for s in recipe.stages] == sorted(s.context_tokens for s in recipe.stages)
    assert all(s.train.steps for s in recipe.stages)
    assert recipe_from_dict(recipe.to_dict()).to_dict() == recipe.to_dict()


def _minimal(**stage):
    return {"stages": [{"name": "s", "context_tokens": 64, "n_examples": 8, "mix": {"qa": 1.0}, **stage}]}


def test_recipe_errors_name_the_stage_and_key():
    with pytest.raises(ValueError, match=r"stages\[0\]: unknown key"):
        recipe_from_dict(_minimal(colour="red"))
    with pytest.raises(ValueError, match=r"stages\[0\]: missing 'mix'"):
        recipe_from_dict({"stages": [{"name": "s", "context_tokens": 64, "n_examples": 8}]})
    with pytest.raises(ValueError, match=r"stages\[0\]\.train: unknown TrainConfig key"):
        recipe_from_dict(_minimal(train={"learning_rate": 1.0}))
    with pytest.raises(ValueError, match="no \\[\\[stages\\]\\]"):
        recipe_from_dict({"name": "x"})
    with pytest.raises(ValueError, match="model_format 'onnx' is not one of \\['rhlens', 'hf'\\]"):
        recipe_from_dict({**_minimal(), "model_format": "onnx"})
    assert recipe_from_dict({**_minimal(), "model_format": "hf"}).to_dict()["model_format"] == "hf"
    assert "model_format" not in recipe_from_dict(_minimal()).to_dict()  # the default is not written


def test_missing_recipe_file_says_where_the_default_is(tmp_path):
    with pytest.raises(FileNotFoundError, match="base.toml"):
        load_recipe(tmp_path / "nope.toml")


@pytest.mark.parametrize("name", ["../../x", "a/b", "/abs", "..", ".", "", "a\\b", 3])
def test_stage_names_that_are_not_plain_folder_names_are_refused(name):
    with pytest.raises(ValueError, match=r"stages\[0\]: stage name .* plain folder name"):
        recipe_from_dict(_minimal(name=name))


def test_plain_stage_names_pass():
    assert recipe_from_dict(_minimal(name="qa-128.v2_b")).stages[0].name == "qa-128.v2_b"
