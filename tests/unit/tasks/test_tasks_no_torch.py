"""rhlens.tasks stays free of torch (its docstring examples run through --doctest-modules)."""

import importlib
import pkgutil

import rhlens.tasks

MODULES = sorted(m.name for m in pkgutil.walk_packages(rhlens.tasks.__path__, "rhlens.tasks."))


def test_no_torch_import():
    for name in MODULES:
        importlib.import_module(name)
    src = [open(importlib.import_module(n).__file__).read() for n in MODULES]
    assert not any("import torch" in s for s in src)
