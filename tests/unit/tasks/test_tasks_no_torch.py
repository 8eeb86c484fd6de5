"""rhlens.tasks stays free of torch (its docstring examples run through --doctest-modules)."""

import importlib
import pkgutil

import rhlens.tasks
from rhlens.tasks import TASKS

MODULES = sorted(m.name for m in pkgutil.walk_packages(rhlens.tasks.__path__, "rhlens.tasks."))


def test_no_torch_import():
    for name in MODULES:
        importlib.import_module(name)
    src = [open(importlib.import_module(n).__file__).read() for n in MODULES]
    assert not any("import torch" in s for s in src)


def _imports(name):
    import ast

    tree = ast.parse(open(importlib.import_module(name).__file__).read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def test_generators_and_loaders_share_modules_not_each_other():
    """Issue 15 item 3: shared pieces live in shared modules (generators.common,
    templates, spans, records); no generator imports another, loaders no generator."""
    tasks = TASKS  # each built-in task's generator module is named after it
    for task in tasks:
        others = {f"rhlens.tasks.generators.{t}" for t in tasks if t != task}
        assert not others & set(_imports(f"rhlens.tasks.generators.{task}")), task
    assert not [m for m in _imports("rhlens.tasks.loaders") if m.startswith("rhlens.tasks.generators")]
