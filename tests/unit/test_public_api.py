"""The curated public API: every exported name resolves, functions are never shadowed by modules,
every public name's own docstring holds a runnable example, and the API page (docs/hooks.py) lists
exactly ``rhlens.__all__``."""

import doctest
import importlib
import importlib.util
import os
import types
from pathlib import Path
from unittest import mock

import rhlens


def test_every_exported_name_resolves():
    for name in rhlens.__all__:
        assert getattr(rhlens, name) is not None, name


def test_functions_stay_functions_after_their_modules_are_imported():
    import rhlens.evaluation
    import rhlens.training  # noqa: F401

    for name in ("train", "evaluate", "retrieval_scores", "knockout", "patch_heads"):
        assert not isinstance(getattr(rhlens, name), types.ModuleType), name


# ---- every public name carries its own runnable example, and the API page lists exactly them ----
HOOKS = Path(__file__).resolve().parents[2] / "docs" / "hooks.py"


def _is_constant(obj) -> bool:
    return isinstance(obj, (tuple, list, dict, str))


def _hooks():
    """docs/hooks.py as a module; the environment variables it sets are undone afterwards."""
    spec = importlib.util.spec_from_file_location("rhlens_docs_hooks", HOOKS)
    module = importlib.util.module_from_spec(spec)
    with mock.patch.dict(os.environ):
        spec.loader.exec_module(module)
    return module


def test_every_public_name_has_a_runnable_example_in_its_own_docstring():
    missing, not_collected = [], []
    for name in rhlens.__all__:
        obj = getattr(rhlens, name)
        if _is_constant(obj):
            continue
        if not doctest.DocTestParser().get_examples(obj.__doc__ or ""):
            missing.append(name)
            continue
        # pytest --doctest-modules runs what DocTestFinder finds in the defining module
        module = importlib.import_module(obj.__module__)
        found = {t.name for t in doctest.DocTestFinder().find(module) if t.examples}
        if f"{obj.__module__}.{obj.__qualname__}" not in found:
            not_collected.append(name)
    assert not missing, f"public names without a >>> example in their own docstring: {missing}"
    assert not not_collected, f"examples that --doctest-modules would not collect: {not_collected}"


def _api_page_names(page: str) -> list[str]:
    """The public names the API page shows: each ``::: module.qualname`` block resolved to the
    ``rhlens.__all__`` name bound to that object, and each ``### `rhlens.NAME` `` constant heading."""
    names = []
    for line in page.splitlines():
        if line.startswith("### `rhlens.") and line.endswith("`"):
            names.append(line[len("### `rhlens."):-1])
        elif line.startswith("::: "):
            path = line[4:].strip()
            module_name, _, qual = path.rpartition(".")
            try:
                obj = importlib.import_module(path)  # a whole-module page (MODULE_PAGES)
                continue
            except ImportError:
                obj = importlib.import_module(module_name)
            for part in qual.split("."):
                obj = getattr(obj, part)
            bound = [n for n in rhlens.__all__ if getattr(rhlens, n) is obj]
            assert len(bound) == 1, f"{path} on the API page is bound to {bound or 'no name'} in rhlens.__all__"
            names.append(bound[0])
    return names


def test_api_page_lists_exactly_the_public_names():
    names = _api_page_names(_hooks()._api())
    expected = set(rhlens.__all__) - {"__version__"}
    duplicates = sorted({n for n in names if names.count(n) > 1})
    assert not duplicates, f"listed more than once on the API page: {duplicates}"
    assert set(names) == expected, (
        f"missing from the API page: {sorted(expected - set(names))}; "
        f"on the page but not public: {sorted(set(names) - expected)}"
    )


def test_api_page_sections_name_only_public_names():
    listed = [n for names in _hooks().SECTIONS.values() for n in names]
    unknown = [n for n in listed if n not in rhlens.__all__]
    assert not unknown, f"docs/hooks.py SECTIONS lists names that are not in rhlens.__all__: {unknown}"
