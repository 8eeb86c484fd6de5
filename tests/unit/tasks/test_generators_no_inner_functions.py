"""The generators define no function inside a function.

The test suite checks annotations at run time (tests/conftest.py): jaxtyping's import hook
decorates every ``def``, a nested one each time its enclosing function runs. Inner functions of
code that runs per example were decorated anew per example, which made 4,000 key-value examples
take 16 s instead of 7 s under the checks (a loaded 2-core machine). The generators' helpers are
module-level functions or methods instead (lambdas are not decorated).
"""

import ast
from pathlib import Path

import rhlens.tasks

TASKS_DIR = Path(rhlens.tasks.__file__).parent

# module -> why its inner functions run once per call that is not per example
ALLOWED = {
    "loaders.py": "each loader builds one example-building function per file it reads",
}


def inner_functions(source: str) -> list:
    """``(line, outer name, inner name)`` of every ``def`` nested in a function (methods of a
    class at module level are not nested; a class inside a function is)."""
    found = []

    def walk(node, outer):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if outer is not None:
                    found.append((child.lineno, outer, child.name))
                walk(child, child.name if outer is None else outer)
            elif isinstance(child, ast.ClassDef) and outer is None:
                walk(child, None)
            else:
                walk(child, outer)

    walk(ast.parse(source), None)
    return found


def test_task_modules_define_no_functions_per_call():
    offenders = {}
    for path in sorted(TASKS_DIR.rglob("*.py")):
        rel = path.relative_to(TASKS_DIR).as_posix()
        if rel in ALLOWED:
            continue
        found = inner_functions(path.read_text(encoding="utf-8"))
        if found:
            offenders[rel] = found
    assert not offenders, f"inner functions (hoist them to module level or into a class): {offenders}"


def test_allowed_modules_still_have_inner_functions():
    for rel in ALLOWED:
        assert inner_functions((TASKS_DIR / rel).read_text(encoding="utf-8")), f"{rel} needs no entry in ALLOWED"


def test_the_check_finds_inner_functions():
    source = (
        "def f():\n    def g():\n        pass\n    return g\n"
        "class C:\n    def m(self):\n        return lambda: 1\n"
        "def h():\n    class D:\n        def n(self):\n            pass\n"
    )
    assert inner_functions(source) == [(2, "f", "g"), (10, "h", "n")]
