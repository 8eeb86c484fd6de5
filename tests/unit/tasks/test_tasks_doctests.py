"""Runs the executable docstring examples of every module in rhlens.tasks."""

import doctest
import importlib
import pkgutil

import pytest

import rhlens.tasks

MODULES = sorted(m.name for m in pkgutil.walk_packages(rhlens.tasks.__path__, "rhlens.tasks."))


@pytest.mark.parametrize("name", ["rhlens.tasks"] + MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0


def test_no_torch_import():
    import sys

    for name in MODULES:
        importlib.import_module(name)
    src = [open(importlib.import_module(n).__file__).read() for n in MODULES]
    assert not any("import torch" in s for s in src)
    del sys
