"""Compare-stage numbers against values computed with scipy.stats (pearsonr, spearmanr) and by hand."""

import math

import pytest
import torch

from rhlens.heads import Head
from rhlens.tools.study.analysis import cosine, pearson, retrieval_heads, spearman

# (x, y, scipy.stats.pearsonr, scipy.stats.spearmanr) computed with scipy 1.17
CASES = [
    ([0.1, 0.4, 0.2, 0.9], [0.3, 0.5, 0.1, 0.8], 0.9095871292493183, 0.8),
    ([1.0, 1.0, 0.5, 0.0, 0.25], [0.2, 0.9, 0.4, 0.1, 0.1], 0.6485603526067959, 0.7894736842105264),  # ties
    ([0.0, 0.5, 1.0], [1.0, 0.5, 0.0], -1.0, -1.0),
]


@pytest.mark.parametrize("x, y, r, rho", CASES)
def test_correlations_match_scipy(x, y, r, rho):
    assert math.isclose(pearson(x, y), r, abs_tol=1e-9)
    assert math.isclose(spearman(x, y), rho, abs_tol=1e-9)


def test_correlations_are_none_when_undefined():
    assert pearson([0.5, 0.5, 0.5], [0.1, 0.2, 0.3]) is None
    assert spearman([0.1, 0.2], [0.3, 0.4]) is None
    with pytest.raises(ValueError, match="3 x values but 2"):
        pearson([1, 2, 3], [1, 2])


def test_cosine_by_hand():
    a, b = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[1.0, 1.0], [0.0, 0.0]])
    assert math.isclose(cosine(a, b), 1 / 2, abs_tol=1e-9)
    assert cosine(a, torch.zeros(2, 2)) is None


def test_retrieval_heads_are_top_k_over_threshold():
    scores = torch.tensor([[0.05, 0.3, 0.2], [0.5, 0.11, 0.0]])
    assert retrieval_heads(scores, threshold=0.1, top_k=10) == {Head(0, 1), Head(0, 2), Head(1, 0), Head(1, 1)}
    assert retrieval_heads(scores, threshold=0.1, top_k=2) == {Head(1, 0), Head(0, 1)}
    assert not retrieval_heads(torch.zeros(2, 3), threshold=0.1, top_k=2)
