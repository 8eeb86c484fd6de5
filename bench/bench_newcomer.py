"""A newcomer's first hour, timed: ``rhlens quickstart`` and the tiny ``rhlens study``, as README
runs them, each in a child process, with wall time, CPU time (user + system of the child and its
workers) and the machine's load average before and after.

    python bench/bench_newcomer.py                       # both, threads chosen by rhlens
    python bench/bench_newcomer.py --what quickstart --threads 1 2
    python bench/bench_newcomer.py --what study3         # the tiny study with three seeds

With several ``--threads`` values each command runs once per value and the ratios are against the
first (the reference run, in this same process). Wall time on a machine that other processes load
is inflated; CPU seconds are the steadier figure. The floor of the tiny study is its 900 training
steps (6 fine-tunes x 150) at about 0.44 s of CPU each at one thread: about 6.6 CPU-minutes.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = {
    "quickstart": ["quickstart", "--out", "{out}", "--no-progress"],
    "study": ["study", "--out", "{out}", "--no-progress"],
    "study3": ["study", "--seeds", "0", "1", "2", "--out", "{out}", "--no-progress"],  # issue 24's 60-minute budget
}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(what: str, threads: int | None, root: Path) -> dict:
    """Run one command in a child process; its wall and CPU seconds and the load around it."""
    out = root / f"{what}-{threads or 'auto'}"
    shutil.rmtree(out, ignore_errors=True)
    argv = [sys.executable, "-c", "import sys; from rhlens.cli import main; sys.exit(main())",
            *(a.format(out=out) for a in COMMANDS[what])]
    if threads is not None:
        argv += ["--threads", str(threads)]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
    load_before = os.getloadavg()[0]
    cpu0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{proc.stderr[-3000:]}")
    chosen = next((line for line in proc.stderr.splitlines() if "thread" in line), "?")
    return {"what": what, "threads": threads, "wall": wall, "cpu": cpu, "load_before": load_before,
            "load_after": os.getloadavg()[0], "chosen": chosen.strip(), "report": str(out / "report.html")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--what", choices=(*COMMANDS, "both"), default="both")
    parser.add_argument("--threads", type=int, nargs="*", default=None,
                        help="thread counts to run (default: rhlens chooses)")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    args = parser.parse_args()
    root = args.out or Path(tempfile.mkdtemp(prefix="bench_newcomer."))
    whats = ("quickstart", "study") if args.what == "both" else (args.what,)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; runs in {root}")
    for what in whats:
        reference = None
        for threads in args.threads or [None]:
            r = run(what, threads, root)
            reference = reference or r
            print(f"{what:10s} threads={threads or 'auto':>4}  wall {r['wall'] / 60:6.2f} min  CPU {r['cpu'] / 60:6.2f} min  "
                  f"wall/reference {r['wall'] / reference['wall']:.2f}  load {r['load_before']:.1f} -> "
                  f"{r['load_after']:.1f}  ({r['chosen']})", flush=True)


if __name__ == "__main__":
    main()
