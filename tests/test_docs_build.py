"""The documentation builds with ``mkdocs build --strict``, tutorials executed (at tiny size).

mkdocs and its plugins are in the ``docs`` extra (part of ``dev``); without them these tests skip
and say so.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted(p.stem for p in (ROOT / "tutorials").glob("[0-9][0-9]_*.py"))


def _need(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed; the docs build needs the docs extra: pip install -e '.[docs]'")


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doctest_examples_become_code_blocks():
    _need("griffe")
    fence = _load(ROOT / "docs" / "griffe_doctest.py").fence_doctests
    text = "Scores.\n\n>>> f([1])[0][1]\n2\n>>> g(\n...     3)\n(0.5, 'x')\n\nAfter.\n    >>> h()\n    1"
    assert fence(text) == (
        "Scores.\n\n```pycon\n>>> f([1])[0][1]\n2\n>>> g(\n...     3)\n(0.5, 'x')\n```\n\nAfter.\n"
        "    ```pycon\n    >>> h()\n    1\n    ```"
    )
    assert fence("no examples here") == "no examples here"
    roles = _load(ROOT / "docs" / "griffe_doctest.py").plain_roles
    assert roles("see :func:`rhlens.train` and :class:`~rhlens.HeadSet`.") == "see `rhlens.train` and `rhlens.HeadSet`."


def test_docs_pages_named_in_nav_exist():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    for page in ("index.md", "installation.md", "concepts.md", "cli.md", "paper.md", "errors.md", "api.md"):
        assert page in nav and (ROOT / "docs" / page).is_file(), page
    for name in TUTORIALS:
        assert f"tutorials/{name}.py" in nav, name
    assert (ROOT / "docs" / "tutorials").resolve() == (ROOT / "tutorials").resolve()


@pytest.mark.slow
def test_mkdocs_build_strict(tmp_path):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python", "mkdocs_jupyter", "jupytext", "ipykernel"):
        _need(module)
    site = tmp_path / "site"
    env = {**os.environ, "RHLENS_TUTORIAL_SIZE": "tiny", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1",
           "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    for name in TUTORIALS:
        page = (site / "tutorials" / name / "index.html").read_text(encoding="utf-8")
        assert "Plotly.newPlot" in page, f"{name}: no plotly figure rendered"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("retrieval_scores", "HeadScores", "knockout_effect", "patching_table", "head_heatmap", "run_quickstart"):
        assert name in api, f"API reference lacks {name}"
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    assert "rhlens quickstart" in cli and "--out" in cli


def test_every_rhlens_command_the_docs_show_parses():
    """Issue 26: the docs' command lines (docs/*.md) use the current CLI: each one in a bash block
    parses, and each option an inline `rhlens ...` snippet names exists; cli.md's option reference
    is the parser's own help (docs/hooks.py), so neither drifts."""
    import re
    import shlex

    from rhlens.cli import build_parser

    parser = build_parser()
    subcommands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices

    def commands(snippets):
        for line in (line for snippet in snippets for line in snippet.splitlines()):
            words = shlex.split(line.split("#")[0])
            if words[:1] == ["rhlens"] and len(words) > 2 and words[1] in subcommands:
                yield words[1:]

    in_cli = set()
    for page in sorted((ROOT / "docs").glob("*.md")):
        text = page.read_text(encoding="utf-8")
        for argv in commands(re.findall(r"```bash\n(.*?)```", text, flags=re.S)):
            in_cli |= {argv[0]} if page.name == "cli.md" else set()
            try:
                parser.parse_args(argv)
            except SystemExit:
                pytest.fail(f"docs/{page.name}: `rhlens {shlex.join(argv)}` does not parse with the current CLI")
        for argv in commands(re.findall(r"`(rhlens [a-z][^`]*)`", text)):
            known = subcommands[argv[0]]._option_string_actions
            unknown = [w for w in argv[1:] if w.startswith("--") and w not in known]
            assert not unknown, f"docs/{page.name}: `rhlens {shlex.join(argv)}`: no option {unknown} in the current CLI"
    assert in_cli >= {"quickstart", "study", "generate", "scores", "knockout", "patch"}, in_cli
    help_page = _load(ROOT / "docs" / "hooks.py")._cli_help()
    assert "<!-- rhlens-cli-help -->" in (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert all(f"### rhlens {name}" in help_page for name in subcommands)
