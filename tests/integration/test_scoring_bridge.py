"""Retrieval scores on a TransformerBridge equal the HookedTransformer's and the naive reference."""

import pytest
import torch

from tests.unit.scoring.scoring_helpers import build_model, random_examples

from rhlens.scoring import retrieval_scores
from tests.references.tl_loops import naive_retrieval_scores


@pytest.fixture(scope="module", params=[None, 2], ids=["mha", "gqa"])
def pair(request):
    from rhlens.models import as_bridge

    kv = request.param
    hooked = build_model(n_key_value_heads=kv) if kv else build_model()
    return hooked, as_bridge(hooked)


@pytest.mark.parametrize("method", ["decode", "forced"])
def test_bridge_equals_hooked_and_reference(pair, method):
    hooked, bridge = pair
    examples = random_examples((20, 31, 17), seed=2)
    kw = dict(method=method, max_new_tokens=6, rouge_gate=None)
    on_bridge = retrieval_scores(bridge, examples, batch_size=2, chunk_size=8, progress=False, **kw)
    on_hooked = retrieval_scores(hooked, examples, batch_size=2, chunk_size=8, progress=False, **kw)
    reference = naive_retrieval_scores(bridge, examples, **kw)
    assert on_bridge.trials.hits.sum() > 0
    assert on_bridge.trials.hits.equal(reference.trials.hits) and on_bridge.trials.responses == reference.trials.responses
    assert on_bridge.trials.hits.equal(on_hooked.trials.hits) and on_bridge.trials.responses == on_hooked.trials.responses
    torch.testing.assert_close(on_bridge.scores, on_hooked.scores)
    assert on_bridge.meta["model_kind"] == "bridge"


@pytest.mark.realdata
def test_stories260k_equals_the_stored_reference(realdata):
    """Item 6 of issue 25: stories260K's decode and forced scores and greedy predictions equal (1e-5) the
    stored reference, made on TransformerLens 3.9 (a HookedTransformer) by scripts/stories260k_reference.py.
    On TransformerLens 4 the model is a TransformerBridge, so this compares the two majors."""
    import json
    from pathlib import Path

    from tests.records.stories260k import stories260k_results

    folder = realdata / "models" / "stories260K"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    stored = json.loads((Path(__file__).parents[1] / "records" / "stories260k_tl3.json").read_text())
    assert stored["model_class"] == "HookedTransformer" and stored["transformer_lens"].startswith("3.")
    now = stories260k_results(folder)
    assert now["decode"]["hits"] > 0
    for method in ("decode", "forced"):
        torch.testing.assert_close(torch.tensor(now[method]["scores"]), torch.tensor(stored[method]["scores"]), rtol=0, atol=1e-5)
        assert now[method]["responses"] == stored[method]["responses"]
    assert now["greedy"] == stored["greedy"]
