"""Head and HeadSet."""

import pytest
import torch

from rhlens.heads import Head, HeadSet, as_head_set


class TestHead:
    def test_label_and_parse(self):
        h = Head(4, 4)
        assert str(h) == "L4H4" and h.wu_key == "4-4"
        for text in ["L4H4", "l4h4", " L4H4 ", "4-4", (4, 4), h]:
            assert Head.parse(text) == h
        assert Head.parse("L12H0") == Head(12, 0)

    @pytest.mark.parametrize("bad", ["L4", "4_4", "H4L4", "", "L-1H2", (1, 2, 3), 7])
    def test_parse_rejects(self, bad):
        with pytest.raises(ValueError, match="Cannot parse"):
            Head.parse(bad)

    @pytest.mark.parametrize("bad", [(0.7, 1.9), (True, 1), (1, False), (1.0, 2), ("1", "2")])
    def test_float_or_bool_head_indices_raise_type_error(self, bad):
        with pytest.raises(TypeError, match="must be an integer"):
            HeadSet([bad])
        with pytest.raises(TypeError, match="must be an integer"):
            Head(*bad)

    def test_integer_like_indices_become_plain_ints(self):
        h = Head(torch.tensor(2), torch.tensor(3))
        assert h == Head(2, 3) and type(h.layer) is int and str(h) == "L2H3"

    def test_negative_and_order(self):
        with pytest.raises(ValueError, match="non-negative"):
            Head(-1, 0)
        assert sorted([Head(1, 0), Head(0, 3), Head(0, 1)]) == [Head(0, 1), Head(0, 3), Head(1, 0)]
        assert hash(Head(1, 2)) == hash(Head.parse("L1H2"))


class TestHeadSet:
    def test_set_ops_keep_type(self):
        a, b = HeadSet(["L0H0", "L1H1"]), HeadSet(["L1H1", "L2H2"])
        for result, expected in [
            (a | b, {"L0H0", "L1H1", "L2H2"}),
            (a & b, {"L1H1"}),
            (a - b, {"L0H0"}),
            (a ^ b, {"L0H0", "L2H2"}),
            (a.union(b), {"L0H0", "L1H1", "L2H2"}),
            (a.intersection(b), {"L1H1"}),
            (a.difference(b), {"L0H0"}),
        ]:
            assert type(result) is HeadSet
            assert set(result.labels()) == expected

    def test_order_repr_and_coercion(self):
        s = HeadSet(["L2H0", (0, 3), "1-1"])
        assert [str(h) for h in s] == ["L0H3", "L1H1", "L2H0"]
        assert s.ordered() == list(s)
        assert repr(s) == "HeadSet([L0H3, L1H1, L2H0])"
        assert HeadSet.parse(["L0H3"]) == HeadSet([Head(0, 3)])
        assert as_head_set(s) is s
        assert as_head_set(["L0H3"]) == HeadSet(["L0H3"])
        assert HeadSet(["L0H0", "0-0"]) == HeadSet(["L0H0"])  # duplicates collapse

    def test_top_k_and_ties(self):
        scores = torch.tensor([[0.5, 0.9, 0.5], [0.5, 0.1, 0.0]])
        assert HeadSet.top_k(scores, 1) == HeadSet(["L0H1"])
        # Three-way tie at 0.5: lower layer, then lower head wins.
        assert HeadSet.top_k(scores, 3) == HeadSet(["L0H1", "L0H0", "L0H2"])
        assert HeadSet.top_k(scores, 4) == HeadSet(["L0H1", "L0H0", "L0H2", "L1H0"])
        assert HeadSet.top_k(scores, 0) == HeadSet()
        assert len(HeadSet.top_k(scores, 6)) == 6
        for k in (-1, 7):
            with pytest.raises(ValueError, match="outside 0..6"):
                HeadSet.top_k(scores, k)

    def test_top_k_accepts_other_dtypes_and_grad(self):
        scores = torch.tensor([[1.0, 2.0]], dtype=torch.float16, requires_grad=True)
        assert HeadSet.top_k(scores, 1) == HeadSet(["L0H1"])

    def test_above_is_strict(self):
        scores = torch.tensor([[0.1, 0.11], [0.0, 1.0]])
        assert HeadSet.above(scores) == HeadSet(["L0H1", "L1H1"])
        assert HeadSet.above(scores, 1.0) == HeadSet()
        assert HeadSet.above(scores, -1.0) == HeadSet(["L0H0", "L0H1", "L1H0", "L1H1"])

    def test_recall_precision_jaccard(self):
        mine, ref = HeadSet(["L0H0", "L0H1", "L1H0"]), HeadSet(["L0H1", "L1H1"])
        assert mine.recall(ref) == 0.5
        assert mine.precision(ref) == pytest.approx(1 / 3)
        assert mine.jaccard(ref) == pytest.approx(1 / 4)
        assert mine.recall(["L0H1", "L1H1"]) == 0.5  # plain iterables work

    def test_edge_cases(self):
        empty, some = HeadSet(), HeadSet(["L0H0"])
        with pytest.raises(ValueError, match="empty reference"):
            some.recall(empty)  # recall of nothing is undefined, not 1.0
        assert empty.recall(some) == 0.0
        assert empty.precision(some) == 1.0  # no false positives
        assert some.precision(empty) == 0.0
        assert empty.jaccard(empty) == 1.0
        assert some.jaccard(empty) == 0.0
        assert some.jaccard(some) == 1.0

    def test_kv_groups(self):
        s = HeadSet(["L0H0", "L0H1", "L0H3", "L1H2"])
        assert s.kv_groups(n_heads=4, n_kv_heads=2) == HeadSet(["L0H0", "L0H1", "L1H1"])
        assert s.kv_groups(n_heads=4, n_kv_heads=4) == s
        assert s.kv_groups(n_heads=4, n_kv_heads=1) == HeadSet(["L0H0", "L1H0"])
        with pytest.raises(ValueError, match="not a multiple"):
            s.kv_groups(n_heads=4, n_kv_heads=3)

    def test_random(self):
        a = HeadSet.random(3, 4, 5, seed=1)
        assert len(a) == 5 and a == HeadSet.random(3, 4, 5, seed=1)
        assert all(h.layer < 3 and h.head < 4 for h in a)
        exclude = HeadSet(["L0H0", "L0H1", "L0H2", "L0H3", "L1H0"])
        for seed in range(10):
            assert not HeadSet.random(3, 4, 7, exclude=exclude, seed=seed) & exclude
        assert HeadSet.random(3, 4, 7, exclude=exclude) == HeadSet.random(3, 4, 12) - exclude
        with pytest.raises(ValueError, match="only 7 remain after excluding 5"):
            HeadSet.random(3, 4, 8, exclude=exclude)

    def test_mask(self):
        m = HeadSet(["L0H1", "L2H0"]).mask(3, 2)
        assert m.dtype == torch.bool and m.shape == (3, 2)
        assert m.nonzero().tolist() == [[0, 1], [2, 0]]
        with pytest.raises(ValueError, match="L2H0 is outside a model with 2 layers x 2 heads"):
            HeadSet(["L2H0"]).mask(2, 2)
        top = HeadSet.top_k(torch.rand(3, 4, generator=torch.Generator().manual_seed(0)), 5)
        assert HeadSet.above(top.mask(3, 4).float(), 0.5) == top


def test_top_k_skips_unmeasured_nan_heads():
    """A partial patch sweep leaves NaN for heads it did not measure: they are never 'top'."""
    scores = torch.tensor([[float("nan"), 0.5], [float("nan"), -0.2]])
    assert HeadSet.top_k(scores, 2) == HeadSet(["L0H1", "L1H1"])
    assert len(HeadSet.top_k(scores, 4)) == 2
