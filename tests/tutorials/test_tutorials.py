"""Every tutorial runs, top to bottom, at its tiny size (RHLENS_TUTORIAL_SIZE=tiny).

The tutorials are jupytext percent-format scripts, so ``runpy`` runs them as they are; the docs
build (tests/test_docs_build.py) runs them again as notebooks. Each run's globals are checked for
the figures and results the tutorial promises, not only for the absence of errors.
"""

import runpy
from pathlib import Path

import plotly.graph_objects as go
import plotly.io as pio
import pytest

from rhlens.adapter.core import NATIVE_KIND, model_kind

TUTORIALS = Path(__file__).resolve().parents[2] / "tutorials"


@pytest.fixture
def run_tutorial(tmp_path, monkeypatch):
    """Run a tutorial at tiny size from an empty folder; returns its globals."""
    monkeypatch.setenv("RHLENS_TUTORIAL_SIZE", "tiny")
    for var in ("RHLENS_CHECKPOINT", "RHLENS_WU_SCORES", "RHLENS_LLAMA3_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    renderer = pio.renderers.default

    def run(name: str) -> dict:
        try:
            return runpy.run_path(str(TUTORIALS / f"{name}.py"), run_name="__main__")
        finally:
            pio.renderers.default = renderer

    return run


def test_every_tutorial_is_tested():
    names = sorted(p.stem for p in TUTORIALS.glob("[0-9][0-9]_*.py"))
    assert names == ["01_first_look", "02_synthetic_data", "03_real_vs_synthetic", "04_interventions",
                     "05_your_own_model", "06_detectors"]
    for path in TUTORIALS.glob("[0-9][0-9]_*.py"):
        text = path.read_text(encoding="utf-8")
        assert "format_name: percent" in text and "# %% [markdown]" in text, path.name
        assert 'os.environ.get("RHLENS_TUTORIAL_SIZE", "full")' in text, path.name


def test_01_first_look(run_tutorial):
    g = run_tutorial("01_first_look")
    assert g["SIZE"] == "tiny"
    assert g["scores"].n_examples == g["N_EXAMPLES"] == 8
    assert len(g["controls"]) == 2
    assert all(c.heads.isdisjoint(g["knocked"]) for c in g["controls"])
    assert 0.0 <= g["effect"].knocked.score <= 1.0


def test_02_synthetic_data(run_tutorial):
    g = run_tutorial("02_synthetic_data")
    import rhlens

    assert set(g["rows"]) == {(t, v) for t in rhlens.TASKS for v in rhlens.VARIANTS}
    # filler haystacks repeat sentences: fewer distinct sentences than the varied variant
    assert g["rows"]["mdqa", "realistic-filler"][0] < g["rows"]["mdqa", "realistic"][0]
    assert isinstance(g["fig"], go.Figure) and len(g["fig"].data) == 2


def test_03_real_vs_synthetic(run_tutorial):
    g = run_tutorial("03_real_vs_synthetic")
    assert set(g["recall"]) == set(g["accuracy"]) == set(g["TRAINING_SETS"])
    assert g["recall"]["real"] == 1.0  # the reference recalls itself
    assert g["fig"].layout.meta["n"] == len(g["TRAINING_SETS"])


def test_04_interventions(run_tutorial):
    g = run_tutorial("04_interventions")
    assert set(g["rows"]) == {f"{m}, {s}" for m in ("zero", "mean", "uniform") for s in ("decode", "all")}
    assert len(g["intact"]) == len(g["blocked"]) == len(g["control"]) == g["N_TEST"]
    assert g["table"].names[:3] == ["original", "intersection", "complement"]
    assert tuple(g["sweep"].effect.shape) == (g["real"].cfg.n_layers, g["real"].cfg.n_heads)


def test_05_your_own_model(run_tutorial):
    g = run_tutorial("05_your_own_model")
    # load_hf_checkpoint gives the installed TransformerLens's own class (a bridge on 4.x)
    assert model_kind(g["model"]) == NATIVE_KIND and type(g["bridge"]).__name__ == "TransformerBridge"
    assert len(g["grid"]) == len(g["LENGTHS"]) * len(g["DEPTHS"]) * g["NEEDLES_PER_CELL"]
    assert float((g["scores"].scores - g["bridge_scores"].scores).abs().max()) < 1e-6
    assert g["again"].scores.equal(g["scores"].scores) or float((g["again"].scores - g["scores"].scores).abs().max()) < 1e-6
    assert g["llama_fig"] is None and g["dry_scores"].n_examples == 1  # the GPU section's dry run


def test_06_detectors(run_tutorial, monkeypatch):
    stories = TUTORIALS.parents[1] / "shared" / "realdata" / "models" / "stories260K"
    if stories.is_dir():  # the tutorial's second part runs where the real data sits beside the checkout
        monkeypatch.setenv("RHLENS_STORIES260K", str(stories))
    g = run_tutorial("06_detectors")
    assert (g["stories_cmp"] is not None) == stories.is_dir()
    assert list(g["cmp"].scores) == ["decode", "forced", "attention_mass", "query_focus", "attribution"]
    assert len(g["table"]) == 10 and g["curves"].ks == g["KS"]
    assert set(g["drops"]) == set(g["cmp"].scores) and g["best"] in g["drops"]
    assert [t.name for t in g["fig"].data][-5:] == list(g["cmp"].scores)
