"""``quickstart --overwrite`` (issue 22 item 2): it replaces an earlier quickstart run's results and
never a folder's files that no quickstart run wrote."""

import json

import pytest

from rhlens.tools.quickstart import (
    OUTPUTS,
    RUN_FILE,
    OutputFolderError,
    _identity,
    prepare_out_dir,
)


def test_overwrite_refuses_a_folder_whose_same_named_files_no_quickstart_wrote(tmp_path):
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    (out / "model" / "weights.bin").write_text("my model")
    (out / "summary.json").write_text('{"my": "summary"}')
    (out / "NOTES.md").write_text("notes")
    with pytest.raises(OutputFolderError, match="holds no quickstart run, but its summary.json, model would be replaced"):
        prepare_out_dir(out, _identity({"seed": 0}), overwrite=True)
    assert (out / "model" / "weights.bin").read_text() == "my model"
    assert json.loads((out / "summary.json").read_text()) == {"my": "summary"}
    assert sorted(p.name for p in out.iterdir()) == ["NOTES.md", "model", "summary.json"]


def test_overwrite_refuses_a_run_json_of_another_tool(tmp_path):
    out = tmp_path / "other"
    out.mkdir()
    (out / RUN_FILE).write_text(json.dumps({"kind": "some-other-tool", "settings_digest": "x"}))
    with pytest.raises(OutputFolderError, match=f"holds no quickstart run, but its {RUN_FILE}"):
        prepare_out_dir(out, _identity({"seed": 0}), overwrite=True)
    assert json.loads((out / RUN_FILE).read_text())["kind"] == "some-other-tool"


def test_overwrite_replaces_an_earlier_quickstart_run_and_keeps_other_files(tmp_path):
    out = tmp_path / "run"
    prepare_out_dir(out, _identity({"seed": 0}))
    for name in OUTPUTS[:2]:
        (out / name).write_text("old result")
    (out / "NOTES.md").write_text("notes")
    prepare_out_dir(out, _identity({"seed": 1}), overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["NOTES.md", RUN_FILE]
    assert json.loads((out / RUN_FILE).read_text())["settings"] == {"seed": 1}
