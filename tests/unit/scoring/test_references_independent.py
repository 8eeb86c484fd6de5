"""The references under tests/references share no code with rhlens (issue 21 item 4): none of
them imports an rhlens module (their ``>>>`` examples may build a model with rhlens)."""

import ast
from pathlib import Path

REFERENCES = Path(__file__).resolve().parents[2] / "references"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_no_reference_imports_rhlens():
    files = sorted(REFERENCES.glob("*.py"))
    assert {p.name for p in files} >= {"tl_loops.py", "hf_wu.py", "wu_rule.py"}
    offending = {p.name: sorted(m for m in imported_modules(p) if m.split(".")[0] == "rhlens") for p in files}
    assert not {k: v for k, v in offending.items() if v}, offending
