"""What glibc's page faults cost rhlens: training steps and ``evaluate`` of the embedded base with
malloc at its default ceiling against :func:`rhlens.tools.allocator.keep_freed_memory`, in one process.

Run from the repository root (the ``rhlens`` command keeps freed memory already)::

    python bench/bench_allocator.py                 # 2 threads, 12 steps of batch 16 at 256 tokens
    python bench/bench_allocator.py --threads 1

Prints seconds per step, system (kernel) seconds and the ratio default / kept (above 1: keeping
freed memory is faster). Runs alternate (default, kept, default, kept) so drift shows.
"""

import argparse
import os
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)

import torch  # noqa: E402

import rhlens  # noqa: E402
from rhlens.adapter.core import model_kind  # noqa: E402
from rhlens.tools.allocator import GLIBC_DYNAMIC_MAX, keep_freed_memory, set_malloc_thresholds  # noqa: E402


def _timed(fn):
    wall, cpu = time.perf_counter(), os.times()
    fn()
    after = os.times()
    return time.perf_counter() - wall, after.system - cpu.system


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--context-tokens", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    examples = rhlens.generate("mdqa", "realistic", args.steps * args.batch_size, context_tokens=args.context_tokens, seed=0)
    held_out = examples[:40]
    config = rhlens.TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=1e-3, warmup_steps=2, seed=0, progress=False)
    rows = []
    for mode in ("default", "kept", "default", "kept"):
        if mode == "kept":
            assert keep_freed_memory(), "no glibc malloc here: nothing to compare"
        else:
            set_malloc_thresholds(GLIBC_DYNAMIC_MAX, 2 * GLIBC_DYNAMIC_MAX)
        model = rhlens.load_base()
        train_s, train_sys = _timed(lambda: rhlens.train(model, examples, config))
        model.eval()
        eval_s, eval_sys = _timed(lambda: rhlens.evaluate(model, held_out, batch_size=8, progress=False))
        rows.append((mode, train_s / args.steps, train_sys, eval_s, eval_sys))
        print(f"{mode:8s} train {train_s / args.steps:.3f} s/step ({train_sys:.1f} s system)   evaluate {eval_s:.2f} s ({eval_sys:.1f} s system)", flush=True)
    mean = {m: [sum(r[i] for r in rows if r[0] == m) / 2 for i in (1, 3)] for m in ("default", "kept")}
    print(f"model {model_kind(model)} ({type(model).__name__}), {args.threads} threads, batch {args.batch_size} at {args.context_tokens} tokens")
    print(f"default / kept: train step {mean['default'][0] / mean['kept'][0]:.2f}x, evaluate {mean['default'][1] / mean['kept'][1]:.2f}x")


if __name__ == "__main__":
    main()
