"""How many CPU threads rhlens uses, chosen before torch loads.

On a small machine shared with other processes, OpenMP's spinning threads cost more than they
bring: with torch's default of one thread per core, a core held by another process made a training
step 2.5x and an evaluation 10x slower than one thread (issue 26). :func:`configure_threads`
therefore sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep instead of spinning) and a thread count
from the cores left free, before torch is imported; the ``rhlens`` command calls it first and
prints what it chose. A user's own ``OMP_NUM_THREADS`` / ``OMP_WAIT_POLICY`` are kept.

>>> choose_threads(3, cores=8, load=6.0, env={})
(3, '--threads 3')
>>> choose_threads(None, cores=8, load=5.6, env={})
(2, '2 of 8 cores free, load 5.6')
>>> choose_threads(None, cores=2, load=7.0, env={})
(1, '0 of 2 cores free, load 7.0')
>>> choose_threads(None, cores=4, load=0.0, env={"OMP_NUM_THREADS": "1"})
(1, 'OMP_NUM_THREADS=1')
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Mapping

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def cpu_cores() -> int:
    """The cores this process may run on (its CPU affinity, else ``os.cpu_count()``)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def running_now(samples: int = 5, interval: float = 0.04) -> float | None:
    """Runnable threads of other processes now: the median of ``samples`` reads of Linux's
    ``procs_running`` (``/proc/stat``) less this process; ``None`` where there is no ``/proc/stat``."""
    import statistics
    import time

    counts = []
    for i in range(samples):
        try:
            with open("/proc/stat") as f:
                line = next((row for row in f if row.startswith("procs_running")), None)
        except OSError:
            return None
        if line is None:
            return None
        counts.append(max(0, int(line.split()[1]) - 1))
        if i + 1 < samples:
            time.sleep(interval)
    return float(statistics.median(counts))


def load_average() -> float:
    """What holds the cores now: :func:`running_now` where Linux tells it, else the 1-minute load
    average (which lags: right after a job ends it still counts it), 0.0 where there is neither."""
    now = running_now()
    if now is not None:
        return now
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0


def free_cores(cores: int | None = None, load: float | None = None) -> int:
    """Cores not held by other processes: ``cores`` minus the rounded load, at least 0."""
    cores = cpu_cores() if cores is None else cores
    load = load_average() if load is None else load
    return max(0, cores - round(load))


def choose_threads(requested: int | None, *, cores: int | None = None, load: float | None = None,
                   env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """``(threads, why)``: ``requested`` when given, else the user's ``OMP_NUM_THREADS``, else
    the free cores (at least 1)."""
    env = os.environ if env is None else env
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ValueError(f"--threads {requested!r} must be a positive whole number")
        return requested, f"--threads {requested}"
    user = env.get("OMP_NUM_THREADS", "")
    if user.isdigit() and int(user) > 0:
        return int(user), f"OMP_NUM_THREADS={user}"
    cores = cpu_cores() if cores is None else cores
    load = load_average() if load is None else load
    free = free_cores(cores, load)
    return max(1, free), f"{free} of {cores} cores free, load {load:.1f}"


def configure_threads(requested: int | None = None) -> tuple[int, str]:
    """Set ``OMP_WAIT_POLICY`` (``PASSIVE`` unless the user set it) and the thread count for
    OpenMP, MKL, OpenBLAS and torch; returns ``(threads, a one-line note of what was chosen)``.

    Call it before ``import torch``: OpenMP reads its variables once, when torch loads. If torch
    is already loaded, its intra-op thread count is still set.
    """
    threads, why = choose_threads(requested)
    if not os.environ.get("OMP_WAIT_POLICY", "").strip():
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    for var in THREAD_VARS:
        if requested is not None or not os.environ.get(var, "").strip():
            os.environ[var] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    note = f"{threads} thread{'s' if threads != 1 else ''}: {why}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    return threads, note


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` inside the block and restored after it (a
    serial study runs its units as each one-thread worker does: float sums over two threads differ
    from one thread's in the last bits).

    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
