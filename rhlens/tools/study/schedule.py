"""Running a study's units: in order in this process, or as independent units in worker processes.

A unit may start once the units it reads are done (:func:`needs`): a model's fine-tune after its
task's data; its evaluation and scores after its fine-tune; its knockout after its scores and its
evaluation (whose result is the knockout's intact baseline); its patching after its own and the
real-data model's scores and evaluations; a task's comparison after every evaluation and score.
So the six fine-tunes of a task are independent of each other, and so are each model's evaluate,
scores and knockout, and :func:`run_units` runs them side by side in ``workers`` processes (each on
``threads`` CPU threads), the costliest ready unit first. With one worker everything runs here, in
run order.

The overall bar counts estimated seconds, not units, so its time left is right when a fine-tune
costs a hundred times a comparison.

>>> from rhlens.tools.study.stages import Unit
>>> units = [Unit("data", "kv", None, "d"), Unit("finetune", "kv", "real", "f1"), Unit("finetune", "kv", "x", "f2"),
...          Unit("evaluate", "kv", "x", "e2"), Unit("compare", "kv", None, "c")]
>>> [u.record for u in needs(units[3], units)], [u.record for u in needs(units[4], units)]
(['f2'], ['e2'])
"""

import importlib
import multiprocessing
import os
import time
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from rhlens.tools.study.stages import REAL, STAGES, Unit
from rhlens.tools.threads import THREAD_VARS, torch_threads

#: stage -> what it reads: (stage, whose) with whose "task" (the task's one unit), "self" (the
#: same model), REAL (the real-data model) or "all" (every model of the task)
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "data": (),
    "finetune": (("data", "task"),),
    "evaluate": (("finetune", "self"),),
    "scores": (("finetune", "self"),),
    "compare": (("evaluate", "all"), ("scores", "all")),
    "knockout": (("scores", "self"), ("evaluate", "self")),
    "patching": (("scores", "self"), ("evaluate", "self"), ("scores", REAL), ("evaluate", REAL)),
    "detectors": (("finetune", "self"),),  # scores the model itself
}


def needs(unit: Unit, units: list[Unit]) -> list[Unit]:
    """The units of ``units`` that ``unit`` reads (see :data:`NEEDS`)."""
    out = []
    for stage, whose in NEEDS[unit.stage]:
        for u in units:
            if u.task != unit.task or u.stage != stage:
                continue
            if whose in ("task", "all") or (whose == "self" and u.model == unit.model) or u.model == whose:
                out.append(u)
    return out


# ---- the worker side -----------------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


def _init_worker(module: str, name: str, config: Any, out: str, threads: int) -> None:
    """Set the worker's threads before torch loads, then build its runner (bars off, no log)."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from rhlens.tools.allocator import keep_freed_memory

    keep_freed_memory()  # as the rhlens command does (a spawned interpreter starts with glibc's defaults)
    import torch

    torch.set_num_threads(threads)
    from rhlens.tools.study.folder import RunFolder

    runner = getattr(importlib.import_module(module), name)(config, out, progress=False)
    runner.folder = RunFolder(Path(out))  # the parent holds the folder's lock and writes the records
    _WORKER["runner"] = runner


def _run_in_worker(unit: Unit) -> dict[str, Any]:
    return run_one(_WORKER["runner"], unit)


def run_one(runner: Any, unit: Unit) -> dict[str, Any]:
    """Do ``unit`` with ``runner`` (a :class:`rhlens.Study`); its record, with its ``seconds``."""
    t0 = time.time()
    record = STAGES[unit.stage](runner, unit)
    record["seconds"] = round(time.time() - t0, 3)
    return record


# ---- the parent side -----------------------------------------------------------------------------
def run_units(runner: Any, units: list[Unit], *, workers: int, threads: int, cost: dict[str, float], bar: Any,
              log: Callable[[str], None]) -> None:
    """Do every unit of ``units`` not yet recorded in ``runner.folder``, writing each record as it
    finishes; ``cost`` (estimated seconds by record) advances ``bar``. In ``workers`` processes of
    ``threads`` threads each, or (one worker, or one unit to do) here with torch at ``threads``
    threads meanwhile."""
    folder = runner.folder
    todo = [u for u in units if not folder.done(u.record)]

    def finished(unit: Unit, record: dict[str, Any]) -> None:
        folder.write(unit.record, record)
        bar.update(cost.get(unit.record, 0.0))

    if workers <= 1 or len(todo) <= 1:
        with torch_threads(threads):  # as a worker of ``threads`` threads would, whatever torch had
            for unit in todo:
                bar.set_description(unit.label)
                finished(unit, run_one(runner, unit))
        return
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: threads set before torch loads
    cls = type(runner)
    init = (cls.__module__, cls.__name__, runner.config, str(folder.path), threads)
    log(f"{len(todo)} units in {workers} worker processes of {threads} thread{'s' if threads != 1 else ''}")
    running: dict[futures.Future, Unit] = {}
    with futures.ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=init) as pool:
        try:
            while todo or running:
                ready = _ready(todo, units, folder, cost)
                if not ready and not running:
                    raise RuntimeError(f"study units {[u.label for u in todo]} wait for inputs no unit makes")
                for unit in ready[: workers - len(running)]:
                    todo.remove(unit)
                    running[pool.submit(_run_in_worker, unit)] = unit
                bar.set_description(", ".join(u.label for u in running.values()))
                done, _ = futures.wait(running, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    finished(running.pop(future), future.result())
        except BaseException:
            for future in running:
                future.cancel()
            raise


def _ready(todo: list[Unit], units: list[Unit], folder: Any, cost: dict[str, float]) -> list[Unit]:
    """The units of ``todo`` whose inputs are recorded, costliest first."""
    ready = [u for u in todo if all(folder.done(n.record) for n in needs(u, units))]
    return sorted(ready, key=lambda u: -cost.get(u.record, 0.0))
