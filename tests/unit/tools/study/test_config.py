"""StudyConfig: presets, documented keys, clear errors on unknown keys and bad values."""

import re
from dataclasses import fields
from pathlib import Path

import pytest

from rhlens.tasks import studied_tasks
from rhlens.tools.study import StudyConfig
from rhlens.tools.study.config import PRESETS, preset_path

SECTIONS = ("model", "data", "finetune", "evaluate", "scores", "knockout", "patching", "estimate")


@pytest.mark.parametrize("name", PRESETS)
def test_presets_load(name):
    cfg = StudyConfig.preset(name)
    assert cfg.tasks and cfg.data.context_tokens > cfg.data.answer_tokens


def test_every_key_is_documented_in_the_tiny_preset_and_the_docstrings():
    text = preset_path("tiny").read_text()
    cfg = StudyConfig()
    for section in SECTIONS:
        assert f"[{section}]" in text
        cls = type(getattr(cfg, section))
        for f in fields(cls):
            assert re.search(rf"^#?\s*{f.name}\b", text, re.M) or f"{f.name} =" in text, f"[{section}] {f.name} not in tiny preset"
            assert f.name in (cls.__doc__ or ""), f"{cls.__name__}.{f.name} undocumented"
    for top in ("name", "tasks", "seeds"):
        assert re.search(rf"^{top} =", text, re.M) and top in StudyConfig.__doc__


def test_tiny_preset_holds_the_agreed_fine_tuning_contract():
    cfg = StudyConfig.preset("tiny")
    assert (cfg.data.context_tokens, cfg.finetune.steps, cfg.finetune.batch_size, cfg.finetune.lr,
            cfg.finetune.trainable, cfg.data.real_variant, cfg.tasks) == (256, 150, 8, 1e-3, "all", "realistic", ("mdqa",))


def test_paper_preset_describes_the_llama_run():
    cfg = StudyConfig.preset("paper")
    assert "Llama-3-8B-Instruct" in cfg.model.base and cfg.finetune.trainable == "lora"
    assert cfg.model.rotary_base > 500_000 and cfg.model.n_ctx > 8192
    assert set(cfg.data.real_files) == set(studied_tasks()) - {"kv"}  # the paper's three real tasks


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "study.toml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, needle", [
    ("[finetune]\nstepz = 3\n", "stepz"),
    ("[finetun]\nsteps = 3\n", "finetun"),
    ("colour = 'red'\n", "colour"),
    ("[finetune]\nsteps = 'many'\n", "expected an integer"),
    ("[finetune]\nsteps = 0\n", "[finetune] steps"),
    ("[data]\nn_limited = 5000\n", "n_limited"),
    ("tasks = ['mdqa', 'chess']\n", "tasks"),
    ("[data]\nvariants = ['realistic', 'symbolic']\n", "drop 'realistic'"),
    ("[data]\nreal_question = 'reworded'\n", "real_question"),
    ("[data]\ntest_depth = 1.5\n", "test_depth"),
    ("[evaluate]\nmax_new_tokens = 100\n", "answer_tokens"),
    ("[scores]\nmethods = ['decode', 'guess']\n", "methods"),
    ("[data]\ncontext_tokens = 30\n", "context_tokens"),
    ("[knockout]\nn_examples = 500\n", "n_test"),
    ("[finetune\n", "not valid TOML"),
])
def test_bad_config_errors_name_the_file_and_key(tmp_path, text, needle):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as info:
        StudyConfig.from_file(path)
    assert str(path) in str(info.value) and needle in str(info.value)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.toml"):
        StudyConfig.from_file(tmp_path / "nothere.toml")


def test_partial_file_takes_defaults_and_round_trips(tmp_path):
    cfg = StudyConfig.from_file(_write(tmp_path, "seed = 3\n[finetune]\nsteps = 7\n"))
    assert cfg.seed == 3 and cfg.finetune.steps == 7 and cfg.finetune.batch_size == StudyConfig().finetune.batch_size
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.digest() != StudyConfig().digest()


def test_prompt_budget_leaves_room_for_answer_and_bos():
    cfg = StudyConfig.preset("tiny")
    assert cfg.prompt_tokens + cfg.data.answer_tokens + 1 == cfg.data.context_tokens


def test_seeds_are_replicates_and_seed_is_their_one_seed_spelling(tmp_path):
    cfg = StudyConfig.from_dict({"seeds": [0, 1, 2]})
    assert cfg.seeds == (0, 1, 2) and cfg.seed == 0 and cfg.replicate(2).seeds == (2,)
    assert StudyConfig.from_dict({"seed": 4}).seeds == (4,)
    assert StudyConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="not both"):
        StudyConfig.from_dict({"seed": 1, "seeds": [1]})
    with pytest.raises(ValueError, match="distinct"):
        StudyConfig.from_dict({"seeds": [1, 1]})
    with pytest.raises(ValueError, match="list of integers"):
        StudyConfig.from_dict({"seeds": ["0"]})
    with pytest.raises(ValueError, match="not one of this study's seeds"):
        cfg.replicate(7)


def test_a_study_of_several_seeds_plans_each_as_a_whole_replicate(tmp_path):
    from rhlens.tools.study import Study

    one = Study("smoke", tmp_path / "a", progress=False).plan()
    three = Study(StudyConfig.preset("smoke").replace(seeds=(0, 1, 2)), tmp_path / "b", progress=False).plan()
    assert three["units"] == {k: 3 * v for k, v in one["units"].items()}
    assert three["total_flops"] == pytest.approx(3 * one["total_flops"], rel=1e-2)
