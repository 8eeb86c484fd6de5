"""``pretrain-base --out`` (issue 22 item 3): checked before any training; a folder holding files
but no pretraining run is refused and left as it was."""

import pytest

import rhlens.training
from rhlens.tools.pretrain import pretrain_base, recipe_from_dict

TINY = {
    "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_mlp": 64},
    "eval": {"n": 2, "context_tokens": 64},
    "stages": [{"name": "s", "context_tokens": 64, "n_examples": 8, "mix": {"qa": 1.0},
                "train": {"steps": 2, "batch_size": 4, "progress": False}}],
}


@pytest.mark.parametrize("resume", [False, True])
def test_a_folder_without_a_pretraining_run_is_refused_before_training(tmp_path, monkeypatch, resume):
    def no_training(*args, **kwargs):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(rhlens.training, "train", no_training)
    out = tmp_path / "handmade"
    (out / "model").mkdir(parents=True)
    files = {"CARD.md": "my card", "abilities.json": "{}", "training_log.jsonl": "{}\n", "model/x.bin": "w"}
    for name, text in files.items():
        (out / name).write_text(text)
    with pytest.raises(FileExistsError, match=r"--out .*handmade is not empty \(CARD.md, abilities.json, model, "
                                              r"training_log.jsonl\) and holds no pretraining run"):
        pretrain_base(recipe_from_dict(TINY), out, resume=resume, progress=False)
    assert {n: (out / n).read_text() for n in files} == files
    assert sorted(p.name for p in out.iterdir()) == ["CARD.md", "abilities.json", "model", "training_log.jsonl"]


def test_an_out_under_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="which is a file"):
        pretrain_base(recipe_from_dict(TINY), tmp_path / "f" / "run", progress=False)
