"""Benchmark: rhlens.retrieval_scores vs a port of Wu et al.'s detection loop.

For each model config and context length, and for decode and forced modes, the same random-weight
model and examples are scored by

- rhlens (:func:`rhlens.scoring.retrieval_scores`: batched, chunked prefill, hooks that reduce
  attention rows to top-k inside), and
- the Wu port (``tests/references/tl_loops.py``'s ``wu_port_scores``: one example at a time, prefill
  of the whole prompt in one pass, KV-cache decoding, a Python loop over heads with top-1).

Each (config, context, implementation) runs in a fresh subprocess, which reports its wall time and
its peak resident memory (``ru_maxrss``; torch's CPU allocations are invisible to tracemalloc).
"peak" is the whole process; "scoring" is peak minus the RSS after the model and examples were
built. Both implementations must find the same hits; the script checks and prints that.

Configs: ``tiny`` is ``tiny_llama()`` (2 layers x 4 heads); ``wide`` is 16 layers x 32 heads with
d_head 8 (random weights). To keep the run to minutes on 2 CPU cores, the wide config uses fewer
examples and decoding steps and skips 8K (the Wu port's one-pass prefill would need ~26 GB of
attention at 8K: 32 heads x 8K x 8K x 4 bytes x 3 tensors); the output says so.

Each row also gives the process CPU time (user + system) of the scoring call and its ratio: on a
shared box wall time includes waiting for a core, CPU time does not; and the box's 1-minute load
average when the row was printed.

Run: ``python bench/bench_scoring.py`` (``--quick`` for a 1K-only smoke run; ``--methods forced``
and ``--configs wide`` to run a part).
"""

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root: tests.references

CONFIGS = {
    "tiny": dict(overrides={}, n_examples=4, steps=10, contexts=(1024, 4096, 8192)),
    "wide": dict(
        overrides=dict(n_layers=16, n_heads=32, d_head=8, d_model=256, d_mlp=512),
        n_examples=2,
        steps=5,
        contexts=(1024, 4096),
    ),
}
WORDS = [f"w{i}" for i in range(200)]


def _examples(n: int, context: int, seed: int = 0):
    from rhlens.tasks.example import Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(context - 8)]
        at = rng.randrange(context // 4, context // 2)
        needle = words[at : at + 10]
        start = len(" ".join(words[:at])) + 1
        prompt = " ".join(words)
        out.append(Example(prompt=prompt, answer=" ".join(needle), needles=((start, start + len(" ".join(needle))),),
                           task="niah", variant="symbolic"))
    return out


def _cpu_seconds() -> float:
    """User + system CPU time of this process (a shared box's wait for a core is not counted)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _load() -> str:
    """The box's 1-minute load average (other sessions share its cores)."""
    return f"load average {os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "load average n/a"


def _child(config: str, context: int, impl: str, method: str) -> None:
    """Run one measurement and print a JSON line."""
    import torch

    from rhlens.models import tiny_llama, word_level_tokenizer
    from rhlens.scoring import retrieval_scores
    from tests.references.tl_loops import wu_port_scores

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "1")))
    spec = CONFIGS[config]
    tok = word_level_tokenizer(WORDS + ["\n"])
    model = tiny_llama(tokenizer=tok, seed=0, n_ctx=context + 64, **spec["overrides"])
    examples = _examples(spec["n_examples"], context)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = _cpu_seconds()
    t0 = time.perf_counter()
    if impl == "rhlens":
        scores = retrieval_scores(model, examples, method=method, max_new_tokens=spec["steps"], rouge_gate=None,
                                  batch_size=spec["n_examples"], chunk_size=512, progress=False)
    else:
        scores = wu_port_scores(model, examples, forced=method == "forced", max_new_tokens=spec["steps"], rouge_gate=None)
    seconds = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "cpu_s": cpu, "peak_mb": peak / 1024, "scoring_mb": (peak - base) / 1024,
                      "hits": scores.trials.hits.tolist()}))


def _measure(config: str, context: int, impl: str, method: str) -> dict:
    cmd = [sys.executable, __file__, "--child", config, str(context), impl, method]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=4, metavar=("CONFIG", "CONTEXT", "IMPL", "METHOD"))
    parser.add_argument("--quick", action="store_true", help="1K context only")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--methods", nargs="*", default=["decode", "forced"], choices=["decode", "forced"])
    args = parser.parse_args()
    if args.child:
        config, context, impl, method = args.child
        _child(config, int(context), impl, method)
        return
    print(f"threads per run: {os.environ.get('BENCH_THREADS', '1')}; each row: fresh subprocess; {_load()}")
    for config in args.configs:
        spec = CONFIGS[config]
        print(f"\n== {config}: {spec['overrides'] or 'tiny_llama() defaults'}; {spec['n_examples']} examples, "
              f"{spec['steps']} decode steps, rhlens batch {spec['n_examples']}, chunk 512")
        if config == "wide":
            print("   (fewer examples and steps, and no 8K, to fit a few minutes on 2 cores; see module docstring)")
        print(f"{'method':7} {'ctx':>5} {'rhlens s':>9} {'wu s':>8} {'speedup':>8} {'rh peak':>8} {'wu peak':>8} "
              f"{'rh scor':>8} {'wu scor':>8} {'same hits':>9} {'rh cpu':>7} {'wu cpu':>7} {'cpu x':>6}")
        peaks: dict = {}
        for method in args.methods:
            for context in (spec["contexts"][:1] if args.quick else spec["contexts"]):
                rh = _measure(config, context, "rhlens", method)
                wu = _measure(config, context, "wu", method)
                if "error" in rh or "error" in wu:
                    why = lambda r: "killed (out of memory?)" if r.get("error") == "exit -9" else r.get("error")  # noqa: E731
                    rh_txt = why(rh) if "error" in rh else f"{rh['seconds']:.2f}s peak {rh['peak_mb']:.0f}M"
                    wu_txt = why(wu) if "error" in wu else f"{wu['seconds']:.2f}s peak {wu['peak_mb']:.0f}M"
                    print(f"{method:7} {context:5} rhlens: {rh_txt}; wu port: {wu_txt}", flush=True)
                    continue
                peaks[(method, context)] = (rh["peak_mb"], wu["peak_mb"], rh["scoring_mb"], wu["scoring_mb"])
                print(f"{method:7} {context:5} {rh['seconds']:9.2f} {wu['seconds']:8.2f} {wu['seconds'] / rh['seconds']:7.1f}x "
                      f"{rh['peak_mb']:7.0f}M {wu['peak_mb']:7.0f}M {rh['scoring_mb']:7.0f}M {wu['scoring_mb']:7.0f}M "
                      f"{str(rh['hits'] == wu['hits']):>9} {rh['cpu_s']:6.2f}s {wu['cpu_s']:6.2f}s "
                      f"{wu['cpu_s'] / rh['cpu_s']:5.1f}x  ({_load()})", flush=True)
        for method in ("decode", "forced"):
            if (method, 4096) in peaks and (method, 8192) in peaks:
                rh4, wu4, rs4, _ = peaks[(method, 4096)]
                rh8, wu8, rs8, _ = peaks[(method, 8192)]
                print(f"{config} {method}: 8K peak rhlens/wu = {rh8 / wu8:.2f} (target <= 0.5); "
                      f"rhlens 8K/4K peak = {rh8 / rh4:.2f}, scoring part {rs8 / max(rs4, 1e-9):.2f} (target <= 2.5)")


if __name__ == "__main__":
    main()
