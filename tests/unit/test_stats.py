"""rhlens.stats: bootstrap intervals, correlations, permutation p-values, on hand-computable cases."""

import itertools
import math

import pytest

from rhlens import stats


def test_constant_values_give_a_zero_width_interval():
    iv = stats.bootstrap_mean([0.0] * 10)
    assert (iv.estimate, iv.low, iv.high, iv.n) == (0.0, 0.0, 0.0, 10)
    assert iv.contains(0.0)


def test_two_point_bootstrap_matches_the_binomial_distribution():
    # Resampling [0, 1] twice: the mean is 0, 0.5 or 1 with probability 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles of many draws are 0 and 1 and the estimate is 0.5.
    iv = stats.bootstrap_mean([0.0, 1.0], n_boot=4000, seed=3)
    assert iv.estimate == 0.5
    assert iv.low == 0.0 and iv.high == 1.0


def test_interval_of_a_proportion_is_close_to_the_normal_approximation():
    values = [1.0] * 30 + [0.0] * 20  # p = 0.6, n = 50: normal 95% half-width 1.96 * sqrt(.24/50) = 0.136
    iv = stats.bootstrap_mean(values, n_boot=4000, seed=1)
    assert iv.estimate == pytest.approx(0.6)
    assert iv.half_width == pytest.approx(1.96 * math.sqrt(0.6 * 0.4 / 50), abs=0.03)
    assert iv.low < 0.6 < iv.high


def test_same_seed_same_interval_and_seeds_widen_it():
    a = stats.bootstrap_mean([1, 0, 1, 1, 0, 1], seed=7)
    assert a == stats.bootstrap_mean([1, 0, 1, 1, 0, 1], seed=7)
    # Two replicates that disagree completely: over seeds x examples the interval spans both.
    two = stats.bootstrap_mean([[1.0] * 20, [0.0] * 20], n_boot=2000, seed=0)
    assert two.estimate == 0.5 and two.over == "seeds x examples" and two.n == 40
    assert two.low == 0.0 and two.high == 1.0


def test_paired_delta_is_the_mean_difference_and_excludes_zero_when_every_example_drops():
    before = [1.0] * 10
    after = [0.0] * 8 + [1.0] * 2
    iv = stats.bootstrap_paired_delta(after, before)
    assert iv.estimate == pytest.approx(-0.8)
    assert iv.high < 0 and not iv.contains(0.0)
    with pytest.raises(ValueError, match="paired delta"):
        stats.bootstrap_paired_delta([1.0], [1.0, 0.0])


def test_pearson_and_spearman_against_hand_values():
    # x = 1..4, y = 1, 3, 2, 4: mean 2.5 each; sxy = 1.5*1.5 + .5*(-.5)... computed by hand = 4; sxx = syy = 5
    assert stats.pearson([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    # Spearman of a monotone but non-linear relation is 1; ties take their mean rank.
    assert stats.spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)
    assert stats.ranks([5, 5, 1]) == [2.5, 2.5, 1.0]
    assert stats.spearman([1, 2, 3], [1, 1, 1]) is None
    assert stats.pearson([1, 2], [3, 4]) is None


def _reference_exact_p(x, y):
    """Independent reference: enumerate permutations, compare |r| by the textbook formula."""
    def r(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        num = sum((u - ma) * (v - mb) for u, v in zip(a, b))
        den = math.sqrt(sum((u - ma) ** 2 for u in a) * sum((v - mb) ** 2 for v in b))
        return num / den
    obs = abs(r(x, y))
    perms = list(itertools.permutations(y))
    return sum(abs(r(x, list(p))) >= obs - 1e-12 for p in perms) / len(perms)


def test_exact_permutation_p_value_matches_an_enumeration():
    x, y = [0.1, 0.5, 0.4, 0.9, 0.7], [0.2, 0.3, 0.6, 0.8, 0.9]
    assert stats.permutation_p(x, y, stats.pearson) == pytest.approx(_reference_exact_p(x, y), abs=1e-4)
    # Perfect rank agreement of 5 points: 2 of 120 orders reach |rho| = 1.
    assert stats.permutation_p([1, 2, 3, 4, 5], [1, 2, 3, 4, 5], stats.spearman) == pytest.approx(2 / 120, abs=1e-4)


def _reference_grouped_p(x, y, groups):
    """Independent reference: every within-group rearrangement of y, |r| by the textbook formula."""
    def r(a, b):
        ma, mb = sum(a) / len(a), sum(b) / len(b)
        num = sum((u - ma) * (v - mb) for u, v in zip(a, b))
        return num / math.sqrt(sum((u - ma) ** 2 for u in a) * sum((v - mb) ** 2 for v in b))
    labels = sorted(set(groups))
    idx = {g: [i for i, h in enumerate(groups) if h == g] for g in labels}
    obs, hits, total = abs(r(x, y)), 0, 0
    for combo in itertools.product(*(itertools.permutations([y[i] for i in idx[g]]) for g in labels)):
        shuffled = list(y)
        for g, vals in zip(labels, combo):
            for i, v in zip(idx[g], vals):
                shuffled[i] = v
        total += 1
        hits += abs(r(x, shuffled)) >= obs - 1e-12
    return hits / total


def test_stratified_permutation_shuffles_only_within_groups():
    # Two seeds: within each, accuracy rises with recall; seed 1 sits higher on both axes.
    x = [0.1, 0.4, 0.6, 0.9, 0.3, 0.5, 0.8, 1.0]
    y = [0.2, 0.3, 0.5, 0.6, 0.4, 0.45, 0.7, 0.8]
    groups = [0, 0, 0, 0, 1, 1, 1, 1]
    p = stats.permutation_p(x, y, stats.pearson, groups=groups, n_perm=20000, seed=1)
    assert p == pytest.approx(_reference_grouped_p(x, y, groups), abs=0.01)
    # A between-group difference alone is no association: no within-group shuffle changes r.
    assert stats.permutation_p([0, 0, 1, 1], [0, 0, 5, 5], stats.pearson, groups=["a", "a", "b", "b"]) == 1.0
    assert stats.permutation_p([0, 0, 1, 1], [0, 0, 5, 5], stats.pearson) < 1.0
    with pytest.raises(ValueError, match="3 group labels for 4 points"):
        stats.permutation_p([1, 2, 3, 4], [1, 2, 3, 5], stats.pearson, groups=[0, 0, 1])
    c = stats.correlation(x, y, method="spearman", groups=groups)
    assert c["stratified"] is True and c["n"] == 8 and c["p_value"] < 0.05


def test_correlation_reports_why_it_is_undefined_and_intervals_when_defined():
    flat = stats.correlation([1.0, 1.0, 1.0, 1.0], [0.2, 0.5, 0.3, 0.9])
    assert flat["estimate"] is None and flat["interval"] is None and "x takes a single value" in flat["why"]
    c = stats.correlation([0.0, 0.25, 0.5, 0.75, 1.0], [0.1, 0.2, 0.45, 0.5, 0.9], method="spearman")
    assert c["estimate"] == 1.0 and c["p_value"] == pytest.approx(2 / 120, abs=1e-4)
    assert c["interval"]["low"] <= c["estimate"] <= c["interval"]["high"] and c["interval"]["n"] == 5
    with pytest.raises(ValueError, match="kendall"):
        stats.correlation([1, 2, 3], [1, 2, 3], method="kendall")


def test_bootstrap_stat_skips_undefined_resamples():
    # max - min is 0 for resamples of one repeated value; make the statistic undefined there.
    iv = stats.bootstrap_stat([0.0, 1.0], lambda xs: (max(xs) - min(xs)) or None, n_boot=200)
    assert iv.estimate == 1.0 and iv.low == 1.0 and iv.high == 1.0
