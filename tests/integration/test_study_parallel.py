"""Issue 26 item 1: the study's independent units in worker processes give the serial run's
results, knockout and patching reuse the evaluate stage's intact results, and the overall bar
counts estimated seconds."""

import json

import pytest

from rhlens.tools.study import Study
from rhlens.tools.study.schedule import NEEDS, needs

pytestmark = pytest.mark.slow


def _strip_times(results):
    results = json.loads(json.dumps(results))
    results.pop("timings"), results.pop("finished")
    for task in results["tasks"].values():
        task["data"].pop("seconds")
        task["compare"].pop("seconds")
        if isinstance(task.get("detectors"), dict):
            task["detectors"].pop("seconds", None)
        for section in ("knockout", "patching"):
            for rec in task[section].values():
                rec.pop("seconds")
    return results


def test_two_workers_give_the_serial_results(tmp_path, monkeypatch):
    import rhlens.evaluation
    from rhlens.tools.study.stages import STAGES

    # one thread, as each worker of the parallel run has (the study sets torch's count to it)
    serial = Study("smoke", tmp_path / "serial", progress=False, threads=1)
    calls: dict[str, int] = {}
    current = []
    real_evaluate = rhlens.evaluation.evaluate

    def counting(model, examples, *args, **kwargs):
        calls[current[-1]] = calls.get(current[-1], 0) + 1
        return real_evaluate(model, examples, *args, **kwargs)

    def in_stage(stage, run):
        def wrapped(self, unit):
            current.append(stage)
            return run(self, unit)
        return wrapped

    monkeypatch.setattr(rhlens.evaluation, "evaluate", counting)
    import rhlens.interventions.ablation
    import rhlens.interventions.table

    # the analyzers that import evaluate by name (knockout_effect) count too; patching_table counts
    # when it has to evaluate its target's baseline itself
    monkeypatch.setattr(rhlens.interventions.ablation, "evaluate", counting)
    real_baseline = rhlens.interventions.table.baseline_or_evaluate

    def counting_baseline(baseline, model, examples, *args, **kwargs):
        if baseline is None:
            calls[current[-1]] = calls.get(current[-1], 0) + 1
        return real_baseline(baseline, model, examples, *args, **kwargs)

    monkeypatch.setattr(rhlens.interventions.table, "baseline_or_evaluate", counting_baseline)
    for stage, run in list(STAGES.items()):
        monkeypatch.setitem(STAGES, stage, in_stage(stage, run))
    one = serial.run()
    n_models, n_random = len(serial.config.model_names("mdqa")), serial.config.knockout.n_random
    # knockout evaluates only its knocked-out runs and patching none intact (both reuse the evaluate
    # stage's records): before issue 26, one more per model in knockout and two more per patched model
    assert calls["evaluate"] == n_models
    assert calls["knockout"] == n_models * (1 + n_random)
    assert "patching" not in calls
    monkeypatch.undo()
    two = Study("smoke", tmp_path / "parallel", progress=False, threads=2).run()
    assert _strip_times(two) == _strip_times(one)
    for model, rec in one["tasks"]["mdqa"]["knockout"].items():
        if not rec.get("skipped"):
            assert rec["baseline"] == pytest.approx(one["tasks"]["mdqa"]["models"][model]["accuracy"])


def test_every_unit_reads_only_units_before_it_in_run_order():
    study = Study("smoke", "unused", progress=False)
    units = study.units()
    for i, unit in enumerate(units):
        for need in needs(unit, units):
            assert units.index(need) < i, (unit.label, need.label)
    assert set(NEEDS) == {u.stage for u in units}
    patching = next(u for u in units if u.stage == "patching")
    assert {(n.stage, n.model) for n in needs(patching, units)} == {
        ("scores", patching.model), ("evaluate", patching.model), ("scores", "real"), ("evaluate", "real")}


def test_bar_weights_units_by_estimated_cost():
    study = Study("tiny", "unused", progress=False)
    cost = study.unit_costs()
    plan = study.plan()
    assert sum(cost.values()) == pytest.approx(sum(plan["estimated_seconds"].values()))
    finetune = [c for r, c in cost.items() if r.endswith("finetune.json")]
    compare = cost["mdqa/compare.json"]
    assert min(finetune) > 100 * compare  # a fine-tune weighs what it costs, not one unit
    assert plan["estimated_seconds"]["data"] > 0  # the estimate counts data generation
