"""The study's data stage, timed: CPU seconds per generated example, to calibrate the dry run's
``rhlens.tools.study.pipeline.DATA_SECONDS_PER_EXAMPLE`` (seconds per example at 256 tokens; the
estimate scales it linearly with ``[data] context_tokens``).

    python bench/bench_data_generation.py                      # mdqa, tiny preset, 256 and 512 tokens
    python bench/bench_data_generation.py --task musique --n-train 40 --contexts 256

It runs the study's own :func:`rhlens.tools.study.data.build_sets` (generation with the embedded base's
tokenizer and the fit check: everything the data stage does) on the tiny preset with ``n_train`` and
``n_test`` scaled down, and prints CPU seconds (this process's user + system time, the steadier figure
on a loaded machine) and wall seconds per example, each per-256-token figure as a ratio to the constant.
"""

import argparse
import dataclasses
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="mdqa")
    parser.add_argument("--n-train", type=int, default=60, help="training examples per set (5 sets)")
    parser.add_argument("--n-test", type=int, default=50, help="test examples (the tiny preset scores, knocks out and patches 50)")
    parser.add_argument("--contexts", type=int, nargs="+", default=[256, 512])
    args = parser.parse_args()

    import rhlens
    from rhlens.tools.study import StudyConfig
    from rhlens.tools.study.data import build_sets
    from rhlens.tools.study.pipeline import DATA_SECONDS_PER_EXAMPLE

    tokenizer = rhlens.load_base().tokenizer
    base = StudyConfig.preset("tiny")
    print(f"constant: {DATA_SECONDS_PER_EXAMPLE} s per example at 256 tokens; task {args.task}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    for ctx in args.contexts:
        data = dataclasses.replace(base.data, context_tokens=ctx, n_train=args.n_train, n_test=args.n_test,
                                   n_limited=min(base.data.n_limited, args.n_train))
        config = base.replace(tasks=(args.task,), data=data)
        cpu, wall = time.process_time(), time.perf_counter()
        sets, _ = build_sets(config, args.task, tokenizer)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        n = sum(len(v) for k, v in sets.items() if k != "real_limited")  # the limited set is a slice, not generated
        per256 = cpu / n * 256 / ctx
        print(f"{ctx:>6} tokens: {n} examples, {cpu:.1f} s CPU ({cpu / n * 1000:.1f} ms each), {wall:.1f} s wall; "
              f"{per256:.4f} CPU s per example per 256 tokens = {per256 / DATA_SECONDS_PER_EXAMPLE:.2f} x the constant")


if __name__ == "__main__":
    main()
