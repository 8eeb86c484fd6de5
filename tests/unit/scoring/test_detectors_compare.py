"""Agreement statistics (against scipy), compare_detectors' checks and table, knockout curves' controls."""

import pytest
import torch

from rhlens.heads import HeadSet
from rhlens.interventions.curves import knockout_curves
from rhlens.models import tiny_llama, word_level_tokenizer
from rhlens.scoring.agreement import bootstrap_interval, spearman, top_k_overlap
from rhlens.scoring.compare import check_detectors, compare_detectors
from rhlens.tasks.example import Example


def test_spearman_equals_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        a = torch.randint(0, 4, (3, 5), generator=g).float()  # many ties
        b = a + torch.rand(3, 5, generator=g)
        assert spearman(a, b) == pytest.approx(stats.spearmanr(a.flatten(), b.flatten()).statistic, abs=1e-12)
    assert spearman(torch.zeros(2, 2), torch.rand(2, 2)) != spearman(torch.zeros(2, 2), torch.rand(2, 2))  # NaN


def test_top_k_overlap_and_bootstrap():
    a = torch.tensor([[4.0, 3.0, 2.0, 1.0]])
    b = torch.tensor([[4.0, 1.0, 2.0, 3.0]])
    assert [top_k_overlap(a, b, k) for k in (1, 2, 3, 4)] == [1.0, 0.5, 2 / 3, 1.0]
    per = torch.rand(30, 2, 4, generator=torch.Generator().manual_seed(1))
    lo, hi = bootstrap_interval(per, per, spearman, n_boot=20)
    assert lo == hi == pytest.approx(1.0)
    assert bootstrap_interval(per, -per, spearman, n_boot=20) == pytest.approx((-1.0, -1.0))
    none = torch.zeros(30, dtype=torch.bool)
    lo, hi = bootstrap_interval(per, per, spearman, n_boot=20, weights_a=none)
    assert lo != lo and hi != hi  # NaN: no draw has a counted example


def test_check_detectors_names_the_choices():
    with pytest.raises(ValueError, match="query_focus"):
        check_detectors(["qrhead"])
    with pytest.raises(ValueError, match="twice"):
        check_detectors(["forced", "forced"])


@pytest.fixture(scope="module")
def small():
    exs = [Example("Ann lives in Rome .\nAnswer:", "Rome", ((0, 18),), "niah", "real"),
           Example("Bo lives in Oslo .\nAnswer:", "Oslo", ((0, 17),), "niah", "real")]
    model = tiny_llama(tokenizer=word_level_tokenizer([e.prompt + e.completion for e in exs]), n_layers=2, n_heads=4, seed=0)
    return model, exs


def test_compare_two_detectors(small):
    model, exs = small
    cmp = compare_detectors(model, exs, detectors=["attention_mass", "attribution"], n_boot=10, progress=False)
    assert cmp.ks == [1, 1, 2]
    row = cmp.agreement[0]
    assert (row["a"], row["b"]) == ("attention_mass", "attribution")
    assert row["spearman"] == pytest.approx(spearman(cmp.scores["attention_mass"].scores, cmp.scores["attribution"].scores))
    assert set(cmp.to_dict()["agreement"][0]["overlap"]) == {"1", "2"}
    assert list(cmp.to_dataframe().columns)[:5] == ["a", "b", "spearman", "spearman_lo", "spearman_hi"]


def test_knockout_curves_controls_avoid_every_top_set(small):
    model, exs = small
    a = torch.arange(8.0).reshape(2, 4)
    b = -a
    c = knockout_curves(model, exs, {"a": a, "b": b}, ks=[1, 2], n_random=2, progress=False)
    assert c.heads["a"][1] == HeadSet.top_k(a, 2) and c.heads["b"][0] == HeadSet.top_k(b, 1)
    for i, draws in enumerate(c.random_heads):
        tops = c.heads["a"][i] | c.heads["b"][i]
        assert all(d.isdisjoint(tops) and len(d) == c.ks[i] for d in draws)
    assert c.curves["a"].shape == (2,) and c.random.shape == (2, 2) and c.metric == "logprob"
    with pytest.raises(ValueError, match="outside every"):
        knockout_curves(model, exs, {"a": a, "b": b}, ks=[4], n_random=1, progress=False)
