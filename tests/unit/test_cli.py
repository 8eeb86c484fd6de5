"""The command line: subcommands, --dry-run, and issue 14 item 20 (every error one line, exit 2)."""

import json

import pytest

from rhlens import cli
from rhlens.cli import main
from rhlens.tasks import studied_tasks


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_help_lists_the_study_and_its_pieces(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("study", "scores", "knockout", "patch", "quickstart", "pretrain-base"):
        assert cmd in out


def test_out_under_a_regular_file_is_one_line_exit_2(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    assert main(["study", "--preset", "smoke", "--out", str(f / "run"), "--no-progress"]) == 2
    line = _err_line(capsys)
    assert line.startswith("rhlens study: error:") and "which is a file" in line


def test_unknown_config_key_is_one_line_exit_2(tmp_path, capsys):
    cfg = tmp_path / "s.toml"
    cfg.write_text("[finetune]\nstepz = 1\n")
    assert main(["study", "--config", str(cfg), "--out", str(tmp_path / "o"), "--dry-run"]) == 2
    assert "stepz" in _err_line(capsys)


def test_pieces_errors_are_one_line(tmp_path, capsys):
    assert main(["scores", "--model", str(tmp_path / "nomodel"), "--examples", str(tmp_path / "x.jsonl"),
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert "nomodel" in _err_line(capsys)
    assert main(["knockout", "--model", str(tmp_path), "--examples", str(tmp_path / "x.jsonl"),
                 "--out", str(tmp_path / "o2"), "--no-progress"]) == 2
    assert "name the heads" in _err_line(capsys)


def test_unexpected_errors_are_one_line_with_their_type(monkeypatch, tmp_path, capsys):
    def boom(args):
        raise RuntimeError("kaput\nsecond line")

    monkeypatch.setitem(cli.HANDLERS, "study", boom)
    assert main(["study", "--out", str(tmp_path / "o")]) == 2
    assert _err_line(capsys) == "rhlens study: error: RuntimeError: kaput second line"


def test_keyboard_interrupt_is_not_swallowed(monkeypatch, tmp_path):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.HANDLERS, "study", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(["study", "--out", str(tmp_path / "o")])


def test_pieces_refuse_a_non_empty_out_before_loading_anything(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["scores", "--model", "never-loaded", "--examples", "x.jsonl", "--out", str(out)]) == 2
    assert "not empty" in _err_line(capsys) and (out / "keep.txt").read_text() == "x"


def test_dry_run_checks_paths_and_prints_plan_without_writing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["study", "--preset", "tiny", "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "dry run" in text and "estimated cost" in text and "finetune" in text
    assert "mdqa: real data generated (realistic variant, questions in the held-out paraphrase form)" in text
    assert not out.exists()


def test_dry_run_of_the_paper_preset_names_the_missing_checkpoint(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["study", "--preset", "paper", "--out", str(tmp_path / "run"), "--dry-run"]) == 2
    assert "Meta-Llama-3-8B-Instruct" in _err_line(capsys)


def test_dry_run_of_the_paper_preset_with_files_in_place(tmp_path, capsys, monkeypatch):
    """A fake checkpoint folder (config.json only: no weights are read) and data files that are
    never parsed (each holds its own name: a study refuses the same data as train and test)."""
    from rhlens.tools.study import StudyConfig

    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "checkpoints" / "Meta-Llama-3-8B-Instruct"
    ckpt.mkdir(parents=True)
    (ckpt / "config.json").write_text(json.dumps({
        "architectures": ["LlamaForCausalLM"], "hidden_size": 4096, "num_attention_heads": 32,
        "num_key_value_heads": 8, "num_hidden_layers": 32, "intermediate_size": 14336, "vocab_size": 128256,
        "max_position_embeddings": 8192, "rope_theta": 500000.0, "rms_norm_eps": 1e-5,
    }))
    for entry in StudyConfig.preset("paper").data.real_files.values():
        for path in entry.values():
            (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / path).write_text(path)
    assert main(["study", "--preset", "paper", "--out", str(tmp_path / "run"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    plan = json.loads(text[text.index("{"): text.rindex("}") + 1])
    assert 7e9 < plan["base"]["n_params"] < 9e9  # Llama-3-8B from its config.json alone
    assert plan["units"]["finetune"] == 3 * 7 and plan["estimated_hours"] > 1


def test_dry_run_task_all_and_base_override(tmp_path, capsys):
    base = tmp_path / "mybase"
    base.mkdir()
    assert main(["study", "--task", "all", "--base", str(base), "--out", str(tmp_path / "r"), "--dry-run"]) == 2
    assert "mybase holds neither rhlens_model.json" in _err_line(capsys)
    assert main(["study", "--task", "all", "--out", str(tmp_path / "r"), "--dry-run"]) == 0
    text = capsys.readouterr().out
    plan = json.loads(text[text.index("{"): text.rindex("}") + 1])
    assert plan["tasks"] == list(studied_tasks()) and plan["units"]["data"] == len(studied_tasks())
