"""What a resumed study must match (issue 22 items 5, 6, 8): the real data files' content and every
byte of the base's weights; cosmetic keys (``name``, ``[estimate]``) do not refuse a resume."""

import os
import shutil

import pytest

from rhlens.tools.study import Study, StudyConfig
from rhlens.tools.study.folder import RunFolder


def _config(**top):
    data = {"n_train": 6, "n_limited": 2, "n_test": 3, "variants": ["symbolic"], "context_tokens": 128}
    return StudyConfig.from_dict({"data": data, "scores": {"n_examples": 3}, "knockout": {"n_examples": 3},
                                  "patching": {"n_examples": 3}, **top})


def _claim(study):
    identity = study.identity()
    return RunFolder.open(study.out, identity, _digest(identity))


def _digest(identity):
    from rhlens.tools.study.pipeline import _digest

    return _digest(identity)


def test_an_edited_real_data_file_is_not_resumed(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    train.write_text('{"question": "q1"}\n')
    test.write_text('{"question": "q2"}\n')
    cfg = _config(data={"n_train": 6, "n_limited": 2, "n_test": 3, "variants": ["symbolic"], "context_tokens": 128,
                        "real_files": {"mdqa": {"train": str(train), "test": str(test)}}})
    out = tmp_path / "run"
    _claim(Study(cfg, out, progress=False))
    assert Study(cfg, out, progress=False).check()[-1].endswith("(resumes the same study)")
    train.write_text('{"question": "q1 edited"}\n')
    with pytest.raises(FileExistsError, match=r"differing keys: real_files\.mdqa\.train"):
        Study(cfg, out, progress=False).check()


def test_a_same_size_swapped_weight_file_is_not_resumed(tmp_path):
    from rhlens.models.base import base_dir

    base = tmp_path / "base"
    shutil.copytree(base_dir() / "model", base)
    big = base / "model-extra.safetensors"  # over the 16 MB that were once only sized
    with open(big, "wb") as f:
        f.truncate(17 << 20)
    cfg = _config().with_base(str(base))
    out = tmp_path / "run"
    _claim(Study(cfg, out, progress=False))
    with open(big, "r+b") as f:  # one byte in the middle, same size
        f.seek(9 << 20)
        f.write(b"\x01")
    os.utime(big, ns=(0, 1))
    with pytest.raises(FileExistsError, match=r"differing keys: base\.model-extra\.safetensors"):
        Study(cfg, out, progress=False).check()


def test_cosmetic_edits_resume_the_same_study(tmp_path):
    out = tmp_path / "run"
    _claim(Study(_config(), out, progress=False))
    renamed = _config(name="renamed", estimate={"flops_per_second": 1e9})
    assert Study(renamed, out, progress=False).check()[-1].endswith("(resumes the same study)")
    with pytest.raises(FileExistsError, match=r"differing keys: config\.seed"):
        Study(_config(seed=99), out, progress=False).check()
