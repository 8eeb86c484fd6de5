"""Mutation check for the scoring tests (issue 21 item 4): apply each mutant of ``MUTANTS`` to a
copy of the repository and expect the scoring tests to fail on it.

A mutant is ``(name, file, before, after)``: the exact text ``before`` (which must occur once in
``file``) is replaced by ``after``. A mutant the tests do not catch is a hole in the tests, and
the script exits 1 naming it; a mutant whose text is no longer in the code exits 2 (update the
list). Run from the repository root (takes a few minutes per mutant on a CPU):

    python scripts/mutation_check.py            # every mutant
    python scripts/mutation_check.py --list     # names only
    python scripts/mutation_check.py stop_step  # one
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ["tests/unit/scoring", "tests/unit/test_stopping.py", "tests/unit/interventions/test_interventions_knockout.py"]

MUTANTS = [
    ("stop_step", "rhlens/engine.py",
     "            if on_step is not None:\n                on_step(step, next_tokens, active.clone())\n"
     "            for b in advance_rows(next_tokens, active, stop, out):\n                stopped[b] = True\n",
     "            for b in advance_rows(next_tokens, active, stop, out):\n                stopped[b] = True\n"
     "            if on_step is not None:\n                on_step(step, next_tokens, active.clone())\n"),
    ("gate_at_or_above", "rhlens/scoring/rouge_gate.py", "rouge > rouge_gate", "rouge >= rouge_gate"),
]


def run(name: str, file: str, before: str, after: str, pytest_args: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix=f"rhlens-mutant-{name}-") as tmp:
        copy = Path(tmp) / "repo"
        shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "site"))
        target = copy / file
        text = target.read_text(encoding="utf-8")
        if text.count(before) != 1:
            print(f"{name}: the text to mutate occurs {text.count(before)} times in {file}; update MUTANTS")
            return 2
        target.write_text(text.replace(before, after), encoding="utf-8")
        cmd = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-m", "not realdata", *TESTS,
               *pytest_args]
        proc = subprocess.run(cmd, cwd=copy, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(copy)})
        caught = proc.returncode == 1
        tail = proc.stdout.strip().splitlines()[-1:] or [""]
        print(f"{name}: {'caught' if caught else 'SURVIVED'} ({tail[0]})")
        return 0 if caught else 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true")
    args, pytest_args = ap.parse_known_args()
    if args.list:
        print("\n".join(m[0] for m in MUTANTS))
        return
    chosen = [m for m in MUTANTS if not args.names or m[0] in args.names]
    codes = [run(*m, pytest_args) for m in chosen]
    sys.exit(max(codes, default=0))


if __name__ == "__main__":
    main()
