"""The curated public API: every exported name resolves, and functions are never shadowed by modules."""

import types

import rhlens


def test_every_exported_name_resolves():
    for name in rhlens.__all__:
        assert getattr(rhlens, name) is not None, name


def test_functions_stay_functions_after_their_modules_are_imported():
    import rhlens.evaluation
    import rhlens.training  # noqa: F401

    for name in ("train", "evaluate", "retrieval_scores", "knockout", "patch_heads"):
        assert not isinstance(getattr(rhlens, name), types.ModuleType), name
