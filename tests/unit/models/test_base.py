"""The shipped base model: its files, card, size, and a handful of examples it answers."""

import json

import pytest

import rhlens
from rhlens.models.base import base_card, base_dir
from rhlens.tasks import generate


@pytest.fixture(scope="module")
def base():
    return rhlens.load_base()


def test_shipped_files_and_size():
    folder = base_dir()
    for name in ("CARD.md", "training_log.jsonl", "abilities.json", "recipe.json", "model/model.safetensors"):
        assert (folder / name).is_file(), name
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size <= 5 * 1024 * 1024, f"shipped base is {size / 2**20:.1f} MiB, over 5 MiB"


def test_card_states_recipe_seed_steps_and_limits():
    card = base_card()
    recipe = json.loads((base_dir() / "recipe.json").read_text())
    assert recipe["name"] in card
    assert f"Seed {recipe['seed']}" in card
    for heading in ("Data curriculum", "What it can do", "What it cannot do"):
        assert heading in card
    steps = sum(s["train"]["steps"] for s in recipe["stages"])
    assert f"{steps} optimizer steps" in card


def test_training_log_covers_every_stage():
    recipe = json.loads((base_dir() / "recipe.json").read_text())
    lines = [json.loads(line) for line in (base_dir() / "training_log.jsonl").read_text().splitlines()]
    for stage in recipe["stages"]:
        steps = [r["step"] for r in lines if r["stage"] == stage["name"] and "loss" in r]
        every = stage["train"]["log_every"]
        assert steps == list(range(every, stage["train"]["steps"] + 1, every)), stage["name"]


def test_base_is_an_ordinary_hooked_transformer_in_eval_mode(base):
    assert rhlens.adapter.model_kind(base) == "hooked"
    assert not base.training
    assert base.cfg.d_vocab == len(base.tokenizer)


@pytest.mark.parametrize("task, floor", [("kv", 0.15), ("mdqa", 0.4)])
def test_base_answers_short_realistic_examples(base, task, floor):
    """Measured on 40 fresh examples at 64 tokens: kv 0.25, mdqa 0.65 (an untrained model: 0)."""
    examples = generate(task, "realistic", 40, context_tokens=64, seed=4242)
    assert rhlens.evaluate(base, examples, progress=False).score >= floor


def test_base_copies_repeated_random_words(base):
    """Induction: the second copy of a random word sequence is predicted, the first is not."""
    import torch

    from rhlens.tasks import vocabulary

    pool = [w for w in vocabulary() if w.isalnum()]
    g = torch.Generator().manual_seed(0)
    words = [pool[i] for i in torch.randint(len(pool), (20,), generator=g).tolist()]
    tokens = base.to_tokens(" ".join(words + words))
    with torch.no_grad():
        correct = (base(tokens)[0, :-1].argmax(-1) == tokens[0, 1:]).float()
    assert correct[21:].mean() >= 0.9  # the second copy, after its first word
    assert correct[:19].mean() <= 0.2


def test_card_abilities_match_a_fresh_measurement(base):
    """abilities.json is what the model does, not a hand-written number."""
    from rhlens.pretrain import measure_abilities

    recorded = json.loads((base_dir() / "abilities.json").read_text())
    recipe = json.loads((base_dir() / "recipe.json").read_text())
    measured = measure_abilities(base, context_tokens=recipe["eval"]["context_tokens"], n=recipe["eval"]["n"])
    assert measured == pytest.approx(recorded, abs=1e-6)
