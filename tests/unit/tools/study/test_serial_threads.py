"""A serial study (``threads=1``) runs its units at one torch thread whatever torch had, as each
one-thread worker of a parallel study does, and gives torch its thread count back afterwards."""

import pytest
import torch

import rhlens.tools.study.report as report
from rhlens.tools.study import Study
from rhlens.tools.study.stages import STAGES


@pytest.fixture
def two_torch_threads():
    """torch at two threads (what a serial study used to run at, left from an earlier setting)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _stub_stages(monkeypatch, run):
    """Every stage is ``run(unit)``; results and reports are skipped (no unit writes what they read)."""
    for stage in list(STAGES):
        monkeypatch.setitem(STAGES, stage, lambda runner, unit: run(unit))
    monkeypatch.setattr(report, "collect_results", lambda folder, cfg, **kwargs: {"stubbed": True})
    monkeypatch.setattr(report, "write_reports", lambda path, results: None)


def test_a_serial_study_runs_every_unit_at_one_thread(tmp_path, monkeypatch, two_torch_threads):
    seen: dict[str, int] = {}

    def record_threads(unit):
        seen[unit.record] = torch.get_num_threads()
        return {}

    _stub_stages(monkeypatch, record_threads)
    study = Study("smoke", tmp_path / "serial", progress=False, threads=1)
    assert study.run() == {"stubbed": True}
    assert sorted(seen) == sorted(u.record for u in study.units())
    assert set(seen.values()) == {1}
    assert torch.get_num_threads() == 2


def test_a_failed_serial_study_gives_torch_its_threads_back(tmp_path, monkeypatch, two_torch_threads):
    def fail(unit):
        assert torch.get_num_threads() == 1
        raise RuntimeError(f"{unit.label} failed")

    _stub_stages(monkeypatch, fail)
    with pytest.raises(RuntimeError, match="failed"):
        Study("smoke", tmp_path / "serial", progress=False, threads=1).run()
    assert torch.get_num_threads() == 2
