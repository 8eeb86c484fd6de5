"""The one rule for which heads random controls avoid (issue 20 item 2), used by knockout_effect,
patching_table and the tools."""

import pytest
import torch

from rhlens.heads import HeadSet
from rhlens.interventions.head_sets import control_exclusion


def _grid(*heads):
    grid = torch.zeros(4, 4)
    for layer, head in heads:
        grid[layer, head] = 0.5
    return grid


def test_controls_avoid_the_chosen_heads_and_every_head_over_the_threshold_in_any_score_grid():
    got = control_exclusion(["L3H3"], scores=[_grid((0, 0)), None, _grid((1, 1))], n_total=16, what="t")
    assert got == HeadSet(["L0H0", "L1H1", "L3H3"])


def test_too_few_heads_left_falls_back_to_avoiding_only_the_chosen_ones():
    crowded = _grid(*[(layer, head) for layer in range(3) for head in range(4)])  # 12 of 16 heads over 0.1
    assert control_exclusion(["L3H0", "L3H1"], scores=crowded, n_total=16, what="t") == HeadSet(["L3H0", "L3H1"])
    assert len(control_exclusion(["L3H0"], scores=crowded, n_total=16, what="t")) == 13  # 3 left >= 2 x 1


def test_an_explicit_exclusion_wins_and_no_exclusion_at_all_is_an_error():
    assert control_exclusion(["L0H0"], exclude=["L2H2"], scores=_grid((1, 1)), what="t") == HeadSet(["L0H0", "L2H2"])
    assert control_exclusion(["L0H0"], exclude=(), what="t") == HeadSet(["L0H0"])
    with pytest.raises(ValueError, match="knockout_effect.*pass scores="):
        control_exclusion(["L0H0"], what="knockout_effect")
