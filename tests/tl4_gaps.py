"""What rhlens cannot do yet on TransformerLens 4 (TransformerBridge models only), one place.

TransformerLens 4 removed ``HookedTransformer``; there rhlens builds and loads its models as
``TransformerBridge``s (:mod:`rhlens.adapter.native`). The capabilities below still need a
``HookedTransformer`` (issue 25 lists them as open). On TransformerLens 4 their tests are skipped
with the reason (``pytest -ra`` shows each one); on 3.x they all run. An entry removed here must
pass on TransformerLens 4.
"""

import importlib.metadata

import pytest

# node-id prefix -> the capability that is missing on a TransformerBridge
TL4_GAPS: dict[str, str] = {
    "tests/unit/adapter/test_fused.py::test_unsupported_configuration_is_named[soft_cap]":
        "soft-capped attention scores have no Hugging Face Llama form",
    "tests/unit/adapter/test_rotated_keys.py":
        "the fused path's rotated-key side cache is HookedTransformer's (a bridge's Hugging Face cache holds rotated keys)",
    "tests/unit/adapter/test_rotary.py::test_rebuild_keeps_device_and_lazily_grows":
        "HookedTransformer's lazily grown rotary tables (a bridge's Hugging Face model rotates per position, no table)",
    "tests/unit/adapter/test_weights.py::test_converters": "TransformerLens 4 has no HookedTransformer weight converters",
    "tests/unit/models/test_base.py::test_base_is_an_ordinary_hooked_transformer": "the base is a bridge on 4.x",
    "tests/unit/models/test_bridge.py::test_analyzer_hooks_same_shapes": "compares a HookedTransformer's hooks with the bridge's",
    "tests/unit/models/test_io.py::test_no_pickle_and_rotary_tables_rebuilt": "reads HookedTransformer rotary tables",
    "tests/unit/training/test_loss.py::test_soft_capped_models_use_full_logits": "soft-capped logits have no Hugging Face Llama form",
    "tests/unit/scoring/test_scoring_retrieval.py::test_errors_name_the_example":
        "TransformerLens 4 re-creates the bridge's tokenizer; a whitespace-only answer span is reported as covering no token",
    "tests/references/tl_loops.py": "the Wu port reference (tests/references/tl_loops.py) runs a HookedTransformer",
    "tests/unit/scoring/test_scoring_retrieval.py::test_wu_port_equals_naive_reference": "the Wu port reference runs a HookedTransformer",
}


def tl_major() -> int:
    """The installed TransformerLens's major version."""
    return int(importlib.metadata.version("transformer-lens").split(".")[0])


def skip_tl4_gaps(items: list[pytest.Item]) -> None:
    """On TransformerLens 4, mark the tests of :data:`TL4_GAPS` skipped with their reason."""
    if tl_major() < 4:
        return
    for item in items:
        reason = next((why for prefix, why in TL4_GAPS.items() if item.nodeid.startswith(prefix)), None)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"TransformerLens 4 gap (issue 25): {reason}"))
