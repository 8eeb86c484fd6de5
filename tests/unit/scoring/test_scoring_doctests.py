"""The scoring modules' docstring examples run."""

import doctest
import importlib

import pytest

MODULES = ["rhlens.scoring.results", "rhlens.scoring.retrieval", "rhlens.scoring.reference"]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS)
    assert result.failed == 0
