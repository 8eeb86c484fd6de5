"""An intervention on nothing (issue 22 item 15): an empty head set for ``knockout_effect`` or
``patch_heads`` is refused (its change of 0.0 is by construction, almost surely a mistake; the
study's complement rows with no heads are :func:`rhlens.interventions.patching_table`'s, which never
calls ``patch_heads`` for them). The context managers ``knockout`` and ``block_attention`` with no
position or no head say so in a warning and stay usable as identity checks, as the engine's tests use
them."""

import pytest

from rhlens.heads import HeadSet
from rhlens.interventions import block_attention, knockout_effect, patch_heads, patching_table


@pytest.mark.parametrize("heads", [[], (), HeadSet()])
def test_knockout_effect_of_no_heads_is_refused(make_model, examples, heads):
    with pytest.raises(ValueError, match=r"knockout_effect: heads is empty, so nothing would be knocked out .*rhlens.evaluate"):
        knockout_effect(make_model(), examples, heads, metric="logprob", progress=False)


@pytest.mark.parametrize("heads", [[], HeadSet()])
def test_patch_heads_of_no_heads_is_refused(make_model, examples, heads):
    with pytest.raises(ValueError, match=r"patch_heads: heads is empty, so nothing would be patched .*rhlens.evaluate"):
        patch_heads(make_model(seed=1), make_model(seed=2), examples, heads, metric="logprob", progress=False)


def test_patching_table_keeps_its_empty_complement_row(make_model, examples):
    """The one caller for which no heads means the baseline: a complement with no heads (every
    source head is also a target head) is the target's own score, a change of 0.0."""
    table = patching_table(make_model(seed=1), make_model(seed=2), examples, ["L0H1"], ["L0H1"], metric="logprob",
                           n_random=1, exclude=(), progress=False)
    row = table["complement"]
    assert not row.heads and row.per_example == table["original"].per_example  # the target's own run
    assert row.delta == pytest.approx(0.0, abs=1e-6)  # a mean of the same float32 values, summed in another order


@pytest.mark.parametrize("kwargs, message", [
    ({"from_positions": [], "to_positions": [1]}, "from_positions names no position, so nothing is blocked"),
    ({"from_positions": [3], "to_positions": []}, "to_positions names no position"),
    ({"from_positions": [3], "to_positions": [1], "heads": []}, "heads= is empty, so nothing is blocked"),
])
def test_block_attention_that_blocks_nothing_says_so(make_model, kwargs, message):
    with pytest.warns(UserWarning, match=message), block_attention(make_model(), **kwargs):
        pass
