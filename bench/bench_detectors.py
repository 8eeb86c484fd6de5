"""Benchmark: the cost of every head detector, in forward passes over the same examples.

On the shipped base (or ``--model DIR``), ``--n`` generated examples of ``--task`` at
``--tokens`` tokens: one plain forward over prompt + answer (the engine's batches, no hooks, fused
attention) is the unit; each detector (:data:`rhlens.scoring.compare.DETECTORS`) is timed on the
same examples and reported as a multiple of it (wall and process CPU seconds, the median of
``--repeats`` rounds, each against a forward timed in the same round), and so is ``mass+focus``,
the one run that gives both attention detectors
(:func:`rhlens.scoring.detectors.query_focus.query_focus_and_mass`, what
:func:`rhlens.compare_detectors` runs when both are asked for). The line the issue asks for: that
run's cost, beyond Wu's forced score. Attribution (the causal yardstick: a forward with a graph
and a backward) is reported on its own line.

Timings on a shared machine are noisy; the CPU-time ratio is the steadier one.

Run: ``python bench/bench_detectors.py [--tokens 512 --n 16 --repeats 3]``.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402


def timed(fn):
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def plain_forward(model, examples, batch_size):
    """One forward over every example's prompt + answer, through the run engine, no hooks."""
    from rhlens import engine
    from rhlens.encoding import encode_for_model

    enc = encode_for_model(model, examples, what="bench", with_answer=True)
    for batch in engine.batches([model], [e.tokens for e in enc], batch_size=batch_size, progress=False, desc=""):
        batch.runner(cache=False)(batch.padded.tokens, batch.padded.attention_mask)

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=None, help="model folder (default: the shipped base)")
    ap.add_argument("--task", default="mdqa")
    ap.add_argument("--tokens", type=int, default=448)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    args = ap.parse_args()

    import rhlens
    from rhlens.adapter import tokenizer_of
    from rhlens.scoring.compare import DETECTORS
    from rhlens.scoring.detectors.query_focus import query_focus_and_mass
    from rhlens.tools.study.pieces import load_any_model

    model = rhlens.load_base() if args.model is None else load_any_model(args.model)
    examples = rhlens.generate(args.task, "realistic", args.n, context_tokens=args.tokens, tokenizer=tokenizer_of(model),
                               seed=0)
    opts = dict(batch_size=args.batch_size, chunk_size=512, max_new_tokens=args.max_new_tokens, rouge_gate=0.5,
                progress=False)
    runs = dict(DETECTORS)
    runs["mass+focus"] = lambda m, ex, **o: query_focus_and_mass(m, ex, batch_size=o["batch_size"],
                                                                chunk_size=o["chunk_size"], progress=False)
    plain_forward(model, examples, args.batch_size)  # warm-up
    wall: dict[str, list[float]] = {n: [] for n in runs}
    cpu: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(args.repeats):
        fw, fc = timed(lambda: plain_forward(model, examples, args.batch_size))
        for name, fn in runs.items():
            w, c = timed(lambda fn=fn: fn(model, examples, **opts))
            wall[name].append(w / fw)
            cpu[name].append(c / fc)
    print(f"{args.n} {args.task} examples of {args.tokens} tokens, batch {args.batch_size}, torch threads "
          f"{torch.get_num_threads()}; cost in forward passes over prompt + answer (median of {args.repeats}):")
    print(f"{'detector':16s} {'wall':>6s} {'cpu':>6s}")
    for name in runs:
        print(f"{name:16s} {statistics.median(wall[name]):6.2f} {statistics.median(cpu[name]):6.2f}")
    print(f"attention_mass and query_focus beyond forced (one run): {statistics.median(wall['mass+focus']):.2f} wall / "
          f"{statistics.median(cpu['mass+focus']):.2f} cpu forward passes (target: at most 1.5); attribution "
          f"{statistics.median(cpu['attribution']):.2f} cpu on its own")


if __name__ == "__main__":
    main()
