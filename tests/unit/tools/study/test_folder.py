"""The run folder (issue 14 item 3): --out checked before any work, foreign folders refused."""

import json
import os

import pytest

from rhlens.tools.study.folder import MANIFEST, RunFolder, check_writable


def test_item3_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        RunFolder.open(f, {}, "d")
    with pytest.raises(NotADirectoryError, match="which is a file"):
        RunFolder.open(f / "sub" / "run", {}, "d")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere")
def test_item3_unwritable_out_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            check_writable(locked / "run")
    finally:
        locked.chmod(0o700)


def test_item3_foreign_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an rhlens study folder"):
        RunFolder.open(out, {"a": 1}, "d1", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / MANIFEST).exists()


def test_item3_changed_config_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    folder = RunFolder.open(out, {"a": 1, "b": {"c": 2}}, "d1")
    folder.write("mdqa/eval/real.json", {"accuracy": 0.5})
    with pytest.raises(FileExistsError, match="differing keys: b.c"):
        RunFolder.open(out, {"a": 1, "b": {"c": 3}}, "d2")
    assert folder.done("mdqa/eval/real.json")
    again = RunFolder.open(out, {"a": 1, "b": {"c": 2}}, "d1")  # same config: resume, records kept
    assert again.read("mdqa/eval/real.json") == {"accuracy": 0.5}
    RunFolder.open(out, {"a": 1, "b": {"c": 3}}, "d2", overwrite=True)
    assert not (out / "mdqa").exists() and json.loads((out / MANIFEST).read_text())["digest"] == "d2"


def test_damaged_manifest_is_named(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / MANIFEST).write_text("{not json")
    with pytest.raises(ValueError, match="study.json is not valid JSON .*manifest is damaged"):
        RunFolder.open(out, {}, "d")


def test_item3_unwritable_out_is_refused_even_as_root(tmp_path, monkeypatch):
    import rhlens.tools.study.folder as folder_mod

    monkeypatch.setattr(folder_mod.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable"):
        RunFolder.open(tmp_path / "run", {}, "d")
    assert not (tmp_path / "run").exists()
