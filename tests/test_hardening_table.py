"""tests/HARDENING.md names a test for every probe of issue 14: each named test must exist.

A reference is ``path::name`` or ``path::Class::name`` (``::name`` reuses the previous path) or a bare ``test_...`` name,
which must be defined in some test file; a name ending in ``...`` is a prefix.
"""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
TABLE = TESTS / "HARDENING.md"


def _defined_tests() -> dict[str, set[str]]:
    out = {}
    for path in TESTS.rglob("test_*.py"):
        names = set(re.findall(r"^\s*def (test_\w+)", path.read_text(encoding="utf-8"), flags=re.M))
        out[str(path.relative_to(TESTS.parent))] = names
    return out


def _references() -> list[tuple[int, str | None, str]]:
    refs = []
    for row, line in enumerate(TABLE.read_text(encoding="utf-8").splitlines()):
        if not re.match(r"^\|\s*\d+\s*\|", line):
            continue
        path = None
        for ref in re.findall(r"`([^`]*test_\w*(?:\.\.\.)?)`", line):
            if "::" in ref:
                parts = ref.split("::")
                path = parts[0] or path  # ``::name`` continues the previous file
                name = parts[-1]  # ``file::Class::name`` names the method
            else:
                name = ref
            refs.append((row, path if "::" in ref else None, name))
    return refs


def test_every_item_of_issue_14_has_a_row():
    rows = re.findall(r"^\|\s*(\d+)\s*\|", TABLE.read_text(encoding="utf-8"), flags=re.M)
    assert set(map(int, rows)) >= set(range(1, 22))


def test_every_named_test_exists():
    defined = _defined_tests()
    everywhere = set().union(*defined.values())
    missing = []
    for row, path, name in _references():
        pool = defined.get(path, set()) if path else everywhere
        found = any(n.startswith(name[:-3]) for n in pool) if name.endswith("...") else name in pool
        if not found:
            missing.append(f"line {row + 1}: {path or '(any file)'}::{name}")
    assert _references() and not missing, missing
