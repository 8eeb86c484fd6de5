"""Benchmark: the same weights as a HookedTransformer and as a TransformerBridge, in one process.

On TransformerLens 3 (both classes exist) the embedded base (or ``--model tiny``) is loaded as a
HookedTransformer and wrapped with :func:`rhlens.as_bridge`; forced and decode scoring, ``evaluate``,
``patch_sweep`` (which runs blocks from each layer on: :func:`rhlens.adapter.forward_from_layer`)
and one training step (``fused_attention`` "auto": eager on a bridge; and ``True``: SDPA on both) run on both, interleaved, ``--repeats`` times; the script prints each median
time and the ratio bridge / HookedTransformer (the issue's target: at most 1.5x). It also checks that
both give the same scores. On TransformerLens 4 only the bridge exists: the script says so and prints
the bridge's times alone.

CPU time (user + system of this process) is reported beside wall time: on a shared, loaded box wall
time includes waiting for a core, CPU time does not.

Run: ``OMP_NUM_THREADS=1 python bench/bench_bridge.py`` (``--model tiny``, ``--model
../shared/realdata/models/stories260K`` for a Hugging Face folder, ``--repeats 5``).
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import rhlens  # noqa: E402
from rhlens.adapter import model_kind  # noqa: E402
from rhlens.tasks import generate  # noqa: E402


def _timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="base", help="base, tiny, or a Hugging Face folder (e.g. stories260K)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--n", type=int, default=8, help="examples per task")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.model in ("base", "tiny"):
        base = rhlens.load_base() if args.model == "base" else rhlens.tiny_llama(tokenizer=rhlens.default_tokenizer(), seed=0)
    else:
        base = rhlens.load_hf_checkpoint(args.model)
    models = {"native": base}
    if model_kind(base) == "hooked":
        models["bridge"] = rhlens.as_bridge(base)
    else:
        print("TransformerLens 4: no HookedTransformer to compare with; the bridge's times alone")
    examples = generate("kv", "symbolic", n=args.n, context_tokens=128, seed=0)
    cases = {
        "forced scoring": lambda m: rhlens.retrieval_scores(m, examples, method="forced", progress=False, rouge_gate=None).scores,
        "decode scoring": lambda m: rhlens.retrieval_scores(m, examples, method="decode", max_new_tokens=8, progress=False,
                                                            rouge_gate=None).scores,
        "evaluate": lambda m: rhlens.evaluate(m, examples, metric="logprob", progress=False).per_example,
        "patch sweep": lambda m: rhlens.patch_sweep(m, m, examples[:4], batch_size=4, progress=False).effect,  # from each layer on
        "train step": lambda m: rhlens.train(m, examples, rhlens.TrainConfig(steps=1, batch_size=len(examples), progress=False,
                                                                             lr=1e-12)).loss_curve[0],
        "train step sdpa": lambda m: rhlens.train(m, examples, rhlens.TrainConfig(  # the bridge's SDPA path on request
            steps=1, batch_size=len(examples), progress=False, lr=1e-12, fused_attention=True)).loss_curve[0],
    }
    print(f"model: {args.model}; {args.n} examples at 128 tokens; median of {args.repeats}; threads {torch.get_num_threads()}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'case':16} {'native s':>9} {'bridge s':>9} {'ratio':>6} {'cpu ratio':>9}  same result")
    for name, fn in cases.items():
        walls: dict[str, list[float]] = {k: [] for k in models}
        cpus: dict[str, list[float]] = {k: [] for k in models}
        results = {}
        for _ in range(args.repeats):
            for key, model in models.items():
                results[key], wall, cpu = _timed(lambda: fn(model))
                walls[key].append(wall)
                cpus[key].append(cpu)
        w = {k: statistics.median(v) for k, v in walls.items()}
        c = {k: statistics.median(v) for k, v in cpus.items()}
        if "bridge" in models:
            a, b = torch.as_tensor(results["native"]), torch.as_tensor(results["bridge"])
            same = bool(torch.allclose(a.float(), b.float(), atol=1e-4))
            print(f"{name:16} {w['native']:9.3f} {w['bridge']:9.3f} {w['bridge'] / w['native']:6.2f} "
                  f"{c['bridge'] / max(c['native'], 1e-9):9.2f}  {same}")
        else:
            print(f"{name:16} {'-':>9} {w['native']:9.3f}")


if __name__ == "__main__":
    main()
