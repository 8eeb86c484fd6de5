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
