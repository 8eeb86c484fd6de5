"""pretrain_base end to end on a micro recipe: outputs, resume, reproducibility, CLI."""

import json

import pytest
import torch

from rhlens.cli import main
from rhlens.tools.pretrain import load_base_from, pretrain_base, recipe_from_dict

MICRO = {
    "name": "micro-base",
    "seed": 3,
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_head": 16, "d_mlp": 64, "n_ctx": 128},
    "eval": {"context_tokens": 64, "n": 4},
    "stages": [
        {"name": "a", "context_tokens": 48, "n_examples": 16, "mix": {"induction": 0.5, "qa": 0.5},
         "tasks": ["kv"], "train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "progress": False}},
        {"name": "b", "context_tokens": 64, "n_examples": 16, "mix": {"qa": 1.0},
         "tasks": ["kv"], "train": {"steps": 2, "batch_size": 4, "lr": 1e-3, "progress": False}},
    ],
}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("micro")
    result = pretrain_base(recipe_from_dict(MICRO), out, progress=False)
    return out, result


def test_run_writes_model_card_log_and_abilities(micro_run):
    out, result = micro_run
    assert result.steps == 5
    for name in ("CARD.md", "training_log.jsonl", "abilities.json", "recipe.json"):
        assert (out / name).is_file(), name
    log = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log if "loss" in r] == ["a"] * 3 + ["b"] * 2
    abilities = json.loads((out / "abilities.json").read_text())
    assert set(abilities) == {"kv/symbolic@64", "kv/realistic@64", "mdqa/realistic@64"}
    assert all(0.0 <= v <= 1.0 for v in abilities.values())
    card = (out / "CARD.md").read_text()
    assert "micro-base" in card and "Seed 3" in card and "What it cannot do" in card
    loaded = load_base_from(out)
    tokens = loaded.to_tokens("Key : ")
    assert torch.equal(loaded(tokens), result.model(tokens))


def test_rerun_reproduces_the_weights(micro_run, tmp_path):
    _, first = micro_run
    second = pretrain_base(recipe_from_dict(MICRO), tmp_path / "again", progress=False)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)


def test_existing_run_needs_resume_and_resume_skips_finished_stages(micro_run):
    out, first = micro_run
    with pytest.raises(FileExistsError, match="resume"):
        pretrain_base(recipe_from_dict(MICRO), out, progress=False)
    again = pretrain_base(recipe_from_dict(MICRO), out, resume=True, progress=False)
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()):
        assert torch.equal(a, b)


def test_bfloat16_storage_halves_the_weights_and_loads_as_float32(micro_run, tmp_path):
    from safetensors import safe_open

    out, first = micro_run
    result = pretrain_base(recipe_from_dict({**MICRO, "storage_dtype": "bfloat16"}), tmp_path / "bf16", progress=False)
    with safe_open(str(result.model_dir / "model.safetensors"), "pt") as f:
        assert {f.get_tensor(k).dtype for k in f.keys()} == {torch.bfloat16}
    size = (result.model_dir / "model.safetensors").stat().st_size
    assert size < 0.6 * (out / "model" / "model.safetensors").stat().st_size
    loaded = load_base_from(tmp_path / "bf16")
    assert next(loaded.parameters()).dtype == torch.float32
    for (name, a), b in zip(first.model.named_parameters(), loaded.parameters()):
        torch.testing.assert_close(a.detach().to(torch.bfloat16).float(), b.detach(), rtol=0, atol=0, msg=name)
    assert json.loads((tmp_path / "bf16" / "recipe.json").read_text())["storage_dtype"] == "bfloat16"


def test_hf_model_format_writes_a_hugging_face_folder_with_the_same_logits(micro_run, tmp_path):
    """model_format = "hf": the final model is a Hugging Face checkpoint that both TransformerLens
    majors load (a HookedTransformer on 3, a bridge on 4) with the trained model's logits."""
    from rhlens.models import load_hf_checkpoint

    _, first = micro_run
    result = pretrain_base(recipe_from_dict({**MICRO, "model_format": "hf"}), tmp_path / "hf", progress=False)
    names = {p.name for p in result.model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names and "rhlens_model.json" not in names
    assert json.loads((tmp_path / "hf" / "recipe.json").read_text())["model_format"] == "hf"
    tokens = first.model.to_tokens("Key : alpha Value : beta")
    for loaded in (load_base_from(tmp_path / "hf"), load_hf_checkpoint(result.model_dir)):
        torch.testing.assert_close(loaded(tokens), first.model(tokens), rtol=0, atol=1e-5)


def test_a_stage_folder_outside_the_run_is_refused_before_anything_is_written(tmp_path):
    from dataclasses import replace

    recipe = recipe_from_dict(MICRO)
    escaping = replace(recipe, stages=(replace(recipe.stages[0], name="../../escaped"),) + recipe.stages[1:])
    out = tmp_path / "a" / "run"
    with pytest.raises(ValueError, match="outside the run folder"):
        pretrain_base(escaping, out, progress=False)
    assert not (tmp_path / "escaped").exists() and not out.exists()


def test_resume_with_a_changed_recipe_is_refused_naming_the_keys(micro_run):
    out, _ = micro_run
    before = {name: (out / name).read_text() for name in ("recipe.json", "CARD.md")}
    changed = json.loads(json.dumps(MICRO))
    changed["seed"] = 4
    changed["stages"][1]["train"]["steps"] = 3
    with pytest.raises(ValueError, match=r"differing keys: seed, stages\.b\.train\.steps"):
        pretrain_base(recipe_from_dict(changed), out, resume=True, progress=False)
    assert {name: (out / name).read_text() for name in before} == before


def test_cli_pretrain_base(tmp_path, capsys):
    recipe = tmp_path / "micro.toml"
    stage_a, stage_b = MICRO["stages"]
    recipe.write_text(
        'name = "cli-base"\nseed = 1\n'
        '[model]\nn_layers = 1\nd_model = 32\nn_heads = 2\nd_head = 16\nd_mlp = 64\nn_ctx = 128\n'
        '[eval]\ncontext_tokens = 64\nn = 2\n'
        '[[stages]]\nname = "a"\ncontext_tokens = 48\nn_examples = 8\nmix = { qa = 1.0 }\ntasks = ["kv"]\n'
        '[stages.train]\nsteps = 2\nbatch_size = 4\nprogress = false\n'
    )
    assert main(["pretrain-base", "--config", str(recipe), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["steps"] == 2 and (tmp_path / "run" / "model").is_dir()
    assert main(["pretrain-base", "--config", str(recipe), "--out", str(tmp_path / "run")]) == 2
