"""Issue 26: the command line as a newcomer meets it (threads, ``generate``, help, failed runs)."""

import json
import os
import subprocess
import sys
import time

import pytest

from rhlens.cli import build_parser, main
from rhlens.tools.threads import choose_threads


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}


def test_the_entry_point_sets_threads_before_torch_loads():
    code = ("import sys; from rhlens import cli; cli.build_parser(); assert 'torch' not in sys.modules, 'parser loads torch'; "
            "from rhlens.tools.threads import configure_threads; n, note = configure_threads(1); "
            "import torch, os; print(torch.get_num_threads(), os.environ['OMP_WAIT_POLICY'], note)")
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, env=_clean_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    threads, policy, note = proc.stdout.split(" ", 2)
    assert (threads, policy) == ("1", "PASSIVE") and note.startswith("1 thread: --threads 1")


def test_a_users_own_settings_are_kept():
    assert choose_threads(None, cores=2, load=0.0, env={"OMP_NUM_THREADS": "2"}) == (2, "OMP_NUM_THREADS=2")
    assert choose_threads(None, cores=2, load=0.0, env={"OMP_NUM_THREADS": ""})[0] == 2  # empty: not set
    with pytest.raises(ValueError, match="--threads 0"):
        choose_threads(0)


def test_bad_threads_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["study", "--out", "x", "--threads", "0"])
    assert exc.value.code == 2 and "--threads: must be an integer of at least 1" in capsys.readouterr().err


def test_generate_writes_what_examples_reads(tmp_path, capsys):
    from rhlens.models import base_dir
    from rhlens.tools.study.pieces import load_examples

    out = tmp_path / "sub" / "ex.jsonl"
    assert main(["generate", "kv", "symbolic", "--n", "3", "--context-tokens", "64", "--out", str(out),
                 "--tokenizer", str(base_dir() / "model")]) == 0
    assert f"--examples {out}" in capsys.readouterr().out
    examples = load_examples(out)
    assert [e.task for e in examples] == ["kv"] * 3 and {e.variant for e in examples} == {"symbolic"}
    assert main(["generate", "kv", "symbolic", "--n", "3", "--out", str(out)]) == 2  # no silent overwrite
    assert "--overwrite" in capsys.readouterr().err


def test_generate_names_a_bad_task(tmp_path, capsys):
    assert main(["generate", "poetry", "realistic", "--out", str(tmp_path / "x.jsonl")]) == 2
    assert "poetry" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_help_shows_defaults_and_explains_positions_mode_and_examples():
    parser = build_parser()
    sub = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    patch, knockout, scores = sub["patch"].format_help(), sub["knockout"].format_help(), sub["scores"].format_help()
    def flat(text):  # help wraps lines
        return " ".join(text.split())
    assert "(default: all)" in flat(patch) and "needle (the needle's tokens)" in flat(patch)
    assert "(default: zero)" in flat(knockout) and "uniform (it attends evenly" in flat(knockout)
    for text in (patch, knockout, scores):
        assert "rhlens generate" in flat(text)  # how to make the --examples file
    assert "--rouge-gate" in scores and "none counts every example" in flat(scores)
    assert "(default: 0.5)" in flat(scores)


def test_rouge_gate_none_parses():
    args = build_parser().parse_args(["scores", "--model", "m", "--examples", "e", "--out", "o", "--rouge-gate", "none"])
    assert args.rouge_gate is None


def test_rouge_warning_names_the_cli_option():
    from pathlib import Path

    import rhlens.scoring.rouge_gate as gate

    assert "--rouge-gate none" in Path(gate.__file__).read_text(encoding="utf-8")


def test_failed_command_leaves_no_empty_out_folder(tmp_path, capsys):
    out = tmp_path / "new" / "deeper"
    assert main(["scores", "--model", str(tmp_path / "nomodel"), "--examples", str(tmp_path / "x.jsonl"),
                 "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert main(["knockout", "--model", str(tmp_path / "nomodel"), "--examples", str(tmp_path / "x.jsonl"),
                 "--heads", "L0H0", "--out", str(kept)]) == 2
    assert kept.is_dir()  # a folder that existed before is left alone


def test_scores_prints_the_real_file_names(tmp_path, capsys):
    from rhlens.models import base_dir

    examples = tmp_path / "ex.jsonl"
    assert main(["generate", "kv", "symbolic", "--n", "2", "--context-tokens", "64", "--out", str(examples)]) == 0
    assert main(["scores", "--model", str(base_dir() / "model"), "--examples", str(examples), "--out",
                 str(tmp_path / "s"), "--method", "both", "--rouge-gate", "none", "--max-new-tokens", "4",
                 "--no-progress"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "<method>" not in line and "decode.safetensors" in line and "forced.wu.json" in line
    written = json.loads((tmp_path / "s" / "scores.json").read_text())
    assert set(written["methods"]) == {"decode", "forced"}
    for name in ("decode.safetensors", "decode.wu.json", "forced.safetensors", "forced.wu.json", "heatmap.html"):
        assert (tmp_path / "s" / name).is_file()


def test_every_option_says_its_default_once():
    """Help said "(default mdqa: ...) (default: mdqa)", "(default: every head over 0.1) (default: None)"
    and "(default: False)" on flags; now each option with a value says its default exactly once."""
    import argparse

    parser = build_parser()
    for name, command in parser._subparsers._group_actions[0].choices.items():  # type: ignore[union-attr]
        formatter = command._get_formatter()
        for action in command._actions:
            if not action.option_strings or action.help is argparse.SUPPRESS:
                continue
            assert action.help, f"rhlens {name} {action.option_strings[-1]} has no help"
            text = " ".join(formatter._expand_help(action).split()) if "%" in formatter._get_help_string(action) \
                else " ".join(formatter._get_help_string(action).split())
            where = f"rhlens {name} {action.option_strings[-1]}: {text!r}"
            assert text.count("default") <= 1, where
            assert "(default: None)" not in text and "(default: False)" not in text, where
            if action.nargs != 0 and action.default not in (None, argparse.SUPPRESS):
                assert "default" in text, where


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="running_now reads Linux's /proc/stat")
def test_free_cores_count_what_runs_now():
    from rhlens.tools.threads import running_now

    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        assert running_now() >= 1  # the spinner holds a core now
    finally:
        spinner.kill()
        spinner.wait()
