"""README's examples run as written: its Python, the inline Python names, and its commands (every
``rhlens`` command parses; ``generate`` and ``scores`` run; quickstart and study are timed by
bench/bench_newcomer.py instead)."""

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
TEXT = README.read_text(encoding="utf-8")
#: commands README shows that take minutes (they are parsed here, and timed by the bench)
LONG = ("quickstart", "study", "pretrain-base")


def _commands() -> list[list[str]]:
    """Every ``rhlens ...`` command of README's bash blocks and inline code, comments dropped."""
    blocks = re.findall(r"```bash\n(.*?)```", TEXT, flags=re.S) + re.findall(r"`(rhlens [^`]*)`", TEXT)
    out = []
    for block in blocks:
        for line in block.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part.split("#")[0])
                if words[:1] == ["rhlens"] and len(words) > 2 and not words[1].startswith("<"):  # not `rhlens patch`
                    out.append(words[1:])
    return out


def test_readme_python_example_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", TEXT, flags=re.S)
    assert blocks, "README has no Python example"
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "HeadSet(" in out
    # issue 26 item 4: the three best heads print best first
    shown = [float(line.rsplit(":", 1)[1]) for line in out.splitlines() if re.fullmatch(r"L\d+H\d+: [\d.]+", line)]
    assert len(shown) == 3 and shown == sorted(shown, reverse=True)


def test_readme_inline_python_names_work_after_import_rhlens():
    names = sorted(set(re.findall(r"`(rhlens\.[\w.]+\(\))`", TEXT)))
    assert "rhlens.models.base_card()" in names
    for call in names:  # a fresh interpreter: nothing imported but rhlens
        proc = subprocess.run([sys.executable, "-c", f"import rhlens; {call}"], capture_output=True, text=True,
                              timeout=300, check=False)
        assert proc.returncode == 0, f"{call}: {proc.stderr[-2000:]}"


def test_readme_commands_parse():
    from rhlens.cli import build_parser

    commands = _commands()
    assert {c[0] for c in commands} >= {"quickstart", "study", "generate", "scores", "pretrain-base"}
    parser = build_parser()
    for argv in commands:
        parser.parse_args(argv)  # exits (fails the test) on a bad option


def test_readme_generate_and_scores_run_as_written(tmp_path, monkeypatch):
    from rhlens.cli import main

    (tmp_path / "rhlens").symlink_to(ROOT / "rhlens")  # README's paths are relative to the repository
    monkeypatch.chdir(tmp_path)
    ran = []
    for argv in _commands():
        if argv[0] in LONG:
            continue
        assert main([*argv, "--no-progress"] if argv[0] == "scores" else argv) == 0, argv
        ran.append(argv[0])
    assert ran[:2] == ["generate", "scores"]
    written = json.loads((tmp_path / "runs" / "scores" / "scores.json").read_text())
    assert written["n_examples"] == 20 and set(written["methods"]) == {"decode", "forced"}
    # issue 26 item 4: JSON holds float32 numbers in their short form
    assert not re.search(r"\d\.\d{12,}", (tmp_path / "runs" / "scores" / "scores.json").read_text())

