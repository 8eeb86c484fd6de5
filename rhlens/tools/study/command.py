"""``rhlens study``'s options, its config from the arguments, and its dry run (for :mod:`rhlens.cli`)."""

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

ALL_TASKS = "all"

def add_study_parser(sub: Any, add_progress: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``rhlens study`` command and its options (``add_progress``: the CLI's progress flags)."""
    from rhlens.tasks import studied_tasks  # torch-free: the tasks with a real-data loader
    from rhlens.tools.study.sections import PRESETS  # torch-free

    s = sub.add_parser("study", help="the paper's whole pipeline: fine-tunes, scores, compare, knockout, patching, report")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=PRESETS, default=None,
                     help="a shipped config (default: tiny, the embedded base, ~15 min on a laptop CPU)")
    src.add_argument("--config", type=Path, default=None, help="your study TOML (keys as in rhlens/recipes/study_tiny.toml)")
    s.add_argument("--task", choices=(*studied_tasks(), ALL_TASKS), default=None,
                   help="study only this task (all: every task with a real-data format)")
    s.add_argument("--base", default=None, help="base model folder (rhlens or Hugging Face) instead of the config's")
    s.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                   help="replicate seeds instead of the config's (each a whole study; results pool them with intervals)")
    s.add_argument("--out", type=Path, required=True, help="run folder (a rerun with the same config resumes)")
    s.add_argument("--dry-run", action="store_true", help="check paths, print the plan and a cost estimate; load no weights")
    s.add_argument("--overwrite", action="store_true", help="replace a study of another config in --out")
    add_progress(s)


def study_config(args: argparse.Namespace) -> Any:
    """The :class:`StudyConfig` of ``rhlens study``'s arguments (preset or file, then the overrides)."""
    from rhlens.tasks import studied_tasks
    from rhlens.tools.study import StudyConfig

    config = StudyConfig.from_file(args.config) if args.config else StudyConfig.preset(args.preset or "tiny")
    if args.task:
        config = config.replace(tasks=studied_tasks() if args.task == ALL_TASKS else (args.task,))
    if args.base:
        config = config.with_base(args.base)
    if args.seeds:
        config = config.replace(seeds=tuple(args.seeds))
    return config


def print_dry_run(study: Any) -> int:
    """Check every path, print the notes, the plan and the cost estimate (no weights loaded); 0."""
    notes = study.check()
    plan = study.plan()
    print(f"study {study.config.name!r}: dry run, no weights loaded")
    for note in notes:
        print(f"  ok  {note}")
    print(json.dumps(plan, indent=2))
    threads = study.threads
    print(f"estimated cost: {plan['total_flops']:.3g} FLOPs, about {plan['estimated_hours']} h of CPU at "
          f"{plan['flops_per_second']:.3g} FLOP/s ([estimate] flops_per_second), data generation included; "
          f"{plan['finetune_steps']} fine-tuning steps are most of it. "
          + (f"{threads} units run side by side (--threads {threads})." if threads > 1 else
             "One unit runs at a time (--threads 2 or more runs independent units side by side)."))
    return 0
