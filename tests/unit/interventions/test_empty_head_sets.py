"""An intervention on nothing (issue 22 item 15): an empty head set for ``knockout_effect`` or
``patch_heads``, and ``block_attention`` with no position or no head, say so (a warning: the change
of 0.0 is by construction; the empty intervention stays usable as an identity check, as the engine's
tests use it)."""

import pytest

from rhlens.interventions import block_attention, knockout_effect, patch_heads


def test_knockout_effect_of_no_heads_says_so(make_model, examples):
    with pytest.warns(UserWarning, match=r"knockout_effect: no heads to knock out: the change is 0.0 by construction"):
        effect = knockout_effect(make_model(), examples, [], metric="logprob", progress=False)
    assert effect.delta == 0


def test_patch_heads_of_no_heads_says_so(make_model, examples):
    with pytest.warns(UserWarning, match=r"patch_heads: no heads to patch: the change is 0.0 by construction"):
        result = patch_heads(make_model(seed=1), make_model(seed=2), examples, [], metric="logprob", progress=False)
    assert result.delta == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"from_positions": [], "to_positions": [1]}, "from_positions names no position, so nothing is blocked"),
    ({"from_positions": [3], "to_positions": []}, "to_positions names no position"),
    ({"from_positions": [3], "to_positions": [1], "heads": []}, "heads= is empty, so nothing is blocked"),
])
def test_block_attention_that_blocks_nothing_says_so(make_model, kwargs, message):
    with pytest.warns(UserWarning, match=message), block_attention(make_model(), **kwargs):
        pass
