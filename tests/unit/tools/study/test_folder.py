"""The run folder (issue 14 item 3, issue 22 items 1, 4, 7): --out checked before any work, foreign
folders refused, --overwrite removes only what a study wrote, one study at a time, damaged records
named and redone."""

import json
import os

import pytest

from rhlens.files import FolderInUseError, hold_lock
from rhlens.tools.study.folder import MANIFEST, RunFolder, check_writable
from rhlens.tools.study.layout import Layout


def test_out_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file"):
        RunFolder.open(f, {}, "d")
    with pytest.raises(NotADirectoryError, match="which is a file"):
        RunFolder.open(f / "sub" / "run", {}, "d")


@pytest.mark.skipif(os.geteuid() == 0 if hasattr(os, "geteuid") else True, reason="root writes anywhere")
def test_unwritable_out_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(PermissionError, match="not writable"):
            check_writable(locked / "run")
    finally:
        locked.chmod(0o700)


def test_foreign_folder_is_refused_and_left_alone(tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an rhlens study folder"):
        RunFolder.open(out, {"a": 1}, "d1", overwrite=True)
    assert (out / "notes.txt").read_text() == "mine" and not (out / MANIFEST).exists()


def test_changed_config_refused_unless_overwrite(tmp_path):
    out = tmp_path / "run"
    folder = RunFolder.open(out, {"a": 1, "b": {"c": 2}}, "d1", tasks=["mdqa"])
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


def test_unwritable_out_is_refused_even_as_root(tmp_path, monkeypatch):
    import rhlens.tools.study.folder as folder_mod

    monkeypatch.setattr(folder_mod.os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="not writable"):
        RunFolder.open(tmp_path / "run", {}, "d")
    assert not (tmp_path / "run").exists()


def test_overwrite_keeps_files_the_study_did_not_write(tmp_path):
    out = tmp_path / "my_analysis"
    folder = RunFolder.open(out, {"a": 1}, "d1", tasks=["mdqa"])
    folder.write(Layout.record("evaluate", "mdqa", "real"), {"accuracy": 0.5})
    folder.write(Layout.RESULTS, {"x": 1})
    (out / "notebook.ipynb").write_text("{}")
    (out / "NOTES.md").write_text("my notes")
    (out / "mdqa" / "plots").mkdir()
    (out / "mdqa" / "plots" / "fig.png").write_text("png")
    RunFolder.open(out, {"a": 2}, "d2", overwrite=True, tasks=["kv"])
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    assert left == ["NOTES.md", "mdqa", "mdqa/plots", "mdqa/plots/fig.png", "notebook.ipynb", MANIFEST]
    assert (out / "NOTES.md").read_text() == "my notes"


def test_a_study_json_of_another_format_is_not_a_study(tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps({"digest": "x", "config": {}, "format": "my-thesis/2"}))
    (out / "chapter1.tex").write_text("text")
    with pytest.raises(FileExistsError, match="not an rhlens study manifest .*my-thesis/2"):
        RunFolder.open(out, {"a": 1}, "d1", overwrite=True)
    (out / MANIFEST).write_text(json.dumps({"digest": "x", "config": {}}))  # no format at all
    with pytest.raises(FileExistsError, match="not an rhlens study manifest"):
        RunFolder.open(out, {"a": 1}, "d1", overwrite=True)
    assert (out / "chapter1.tex").read_text() == "text"


def test_a_second_study_of_a_folder_in_use_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    with RunFolder.lock(out):
        with pytest.raises(FolderInUseError, match=f"--out {out} is in use by another process \\(pid {os.getpid()} "):
            with RunFolder.lock(out):
                pass
    with RunFolder.lock(out):  # released when the first holder ends
        assert RunFolder.inspect(out, {"a": 1}, "d1") == "new"  # the lock file alone is no foreign content


def test_study_run_refuses_a_folder_another_study_holds(tmp_path):
    from rhlens.tools.study.pipeline import Study

    out = tmp_path / "run"
    out.mkdir()
    with hold_lock(out / Layout.LOCK, "elsewhere"):
        with pytest.raises(FolderInUseError, match="in use by another process"):
            Study("smoke", out, progress=False).run()
    assert sorted(p.name for p in out.iterdir()) == [Layout.LOCK]  # nothing written, nothing removed


@pytest.mark.parametrize("damage", ["", '{"accuracy": 0.'])
def test_a_damaged_record_is_named_and_its_unit_redone(tmp_path, damage):
    out = tmp_path / "run"
    folder = RunFolder.open(out, {"a": 1}, "d1", tasks=["mdqa"])
    rel = Layout.record("evaluate", "mdqa", "real")
    folder.write(rel, {"accuracy": 0.5})
    (out / rel).write_text(damage)
    with pytest.warns(UserWarning, match="eval/real.json is not valid JSON .*redoing that unit"):
        assert not folder.done(rel)
    with pytest.raises(ValueError, match="eval/real.json is not valid JSON"):
        folder.read(rel)
