"""Issue 16 item 5, on one GPU: long-context scoring of an 8B-shaped model, patching of a 1B-shaped one.

One prepared script for a device session (``python bench/bench_gpu.py``; about 10 minutes on an
H200). Every weight is random (no download): the figures are time and memory, not science.

Part 1, retrieval scores of a Llama-3-8B-shaped model (32 layers, d_model 4096, 32 query heads
over 8 key/value heads, d_mlp 14336, vocabulary 128,256; bfloat16) at 8K, 16K and 32K tokens,
decode and forced, rhlens (:func:`rhlens.retrieval_scores`) against the Wu port
(``tests/references/tl_loops.py``: one example, one-pass prefill with eager attention, a Python
loop over heads). Each measurement runs in its own process, so the peak memory
(``torch.cuda.max_memory_allocated``) is its own; an out-of-memory ends that row with ``"oom"``.

Part 2, cross-model patching of a 1B-shaped pair (16 layers, d_model 2048, 32 heads over 8,
d_mlp 8192, float32): one forward-equivalent (``rhlens.engine.answer_logprobs`` of the target),
the exact :func:`rhlens.patch_sweep` of all 512 heads, and :func:`rhlens.attribution_sweep`, with
the Spearman correlation and top-10 overlap of their effects.

``--scale smoke`` runs the same code on small shapes and lengths (minutes on a CPU), to check the
script before a device session. Results: one JSON object per row on stdout and in ``--out``
(default ``$OUT/bench_gpu.jsonl`` when ``$OUT`` is set), then Markdown tables for
``bench/RESULTS.md``.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [BENCH, os.path.dirname(BENCH)]  # bench_scoring's examples; the repo root for tests.references

LLAMA3_8B = dict(n_layers=32, d_model=4096, n_heads=32, n_key_value_heads=8, d_head=128, d_mlp=14336,
                 d_vocab=128256, rotary_base=500000)
LLAMA_1B = dict(n_layers=16, d_model=2048, n_heads=32, n_key_value_heads=8, d_head=64, d_mlp=8192,
                d_vocab=128256, rotary_base=500000)
SCALES = {
    "full": dict(score_shape=LLAMA3_8B, contexts=(8192, 16384, 32768), n_examples=2, steps=10,
                 patch_shape=LLAMA_1B, patch_examples=8, patch_tokens=1024),
    "smoke": dict(score_shape=dict(n_layers=2, d_model=64, n_heads=4, n_key_value_heads=2, d_head=16, d_mlp=128),
                  contexts=(256, 512), n_examples=2, steps=4,
                  patch_shape=dict(n_layers=2, d_model=64, n_heads=4, n_key_value_heads=2, d_head=16, d_mlp=128),
                  patch_examples=4, patch_tokens=128),
}


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _build(shape: dict, n_ctx: int, dtype, seed: int):
    """A random-weight Llama of ``shape`` built directly on the device."""
    import torch

    from bench_scoring import WORDS
    from rhlens.models import tiny_llama, word_level_tokenizer

    with torch.device(_device()):
        model = tiny_llama(tokenizer=word_level_tokenizer(WORDS + ["\n"]), seed=seed, n_ctx=n_ctx, dtype=dtype,
                           device=_device(), **shape)
    return model.eval()


def _reset_peak() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _score_child(scale: str, context: int, impl: str, method: str) -> dict:
    import torch

    from bench_scoring import _examples
    from rhlens import retrieval_scores
    from tests.references.tl_loops import wu_port_scores

    s = SCALES[scale]
    model = _build(s["score_shape"], context + 64, torch.bfloat16, seed=0)
    examples = _examples(s["n_examples"], context)
    _reset_peak()
    t0 = time.perf_counter()
    if impl == "rhlens":
        scores = retrieval_scores(model, examples, method=method, max_new_tokens=s["steps"], rouge_gate=None,
                                  batch_size=1, chunk_size=4096 if scale == "full" else 128, progress=False)
    else:
        scores = wu_port_scores(model, examples, forced=method == "forced", max_new_tokens=s["steps"], rouge_gate=None)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return {"seconds": time.perf_counter() - t0, "peak_gib": _peak_gib(), "hits": scores.trials.hits.tolist()}


def _spearman(a, b) -> float:

    ra = a.flatten().argsort().argsort().double()
    rb = b.flatten().argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def _patch_child(scale: str) -> dict:
    import torch

    from bench_scoring import _examples
    from rhlens import attribution_sweep, patch_sweep
    from rhlens.encoding import encode_for_model
    from rhlens.engine import answer_logprobs

    s = SCALES[scale]
    source = _build(s["patch_shape"], s["patch_tokens"] + 64, torch.float32, seed=1)
    target = _build(s["patch_shape"], s["patch_tokens"] + 64, torch.float32, seed=2)
    examples = _examples(s["patch_examples"], s["patch_tokens"])

    def timed(fn):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return out, time.perf_counter() - t0

    encoded = encode_for_model(target, examples, what="bench", with_answer=True, append_eos=False)
    forward = lambda: answer_logprobs([target], encoded, batch_size=4, chunk_size=None, progress=False)  # noqa: E731
    timed(forward)  # warm-up (kernels, allocator)
    _, one_forward = timed(forward)
    _reset_peak()
    exact, sweep_s = timed(lambda: patch_sweep(source, target, examples, batch_size=4, progress=False))
    sweep_peak = _peak_gib()
    _reset_peak()
    attr, attr_s = timed(lambda: attribution_sweep(source, target, examples, batch_size=4, progress=False))
    k = min(10, exact.effect.numel())
    top_exact = set(exact.effect.flatten().abs().topk(k).indices.tolist())
    top_attr = set(attr.effect.flatten().abs().topk(k).indices.tolist())
    return {"forward_s": one_forward, "sweep_s": sweep_s, "sweep_fwd_eq": sweep_s / one_forward, "sweep_peak_gib": sweep_peak,
            "attribution_s": attr_s, "attribution_fwd_eq": attr_s / one_forward, "attribution_peak_gib": _peak_gib(),
            "spearman": _spearman(exact.effect, attr.effect), "top_k": k, "top_overlap": len(top_exact & top_attr),
            "heads": int(exact.effect.numel())}


def _run(args: list[str], timeout: float) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *args]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {timeout:.0f} s"}
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"
        return {"error": "oom" if "out of memory" in proc.stderr.lower() else err}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="full")
    parser.add_argument("--parts", nargs="*", default=["score", "patch"], choices=["score", "patch"])
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per measurement process")
    parser.add_argument("--out", default=os.path.join(os.environ["OUT"], "bench_gpu.jsonl") if os.environ.get("OUT") else None)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, scale, *rest = args.child
        result = _score_child(scale, int(rest[0]), rest[1], rest[2]) if kind == "score" else _patch_child(scale)
        print(json.dumps(result))
        return

    import torch

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    rows = []
    if "score" in args.parts:
        for context in SCALES[args.scale]["contexts"]:
            for method in ("forced", "decode"):
                pair = {impl: _run(["score", args.scale, str(context), impl, method], args.timeout) for impl in ("rhlens", "wu_port")}
                same = pair["rhlens"].get("hits") == pair["wu_port"].get("hits") if "hits" in pair["wu_port"] else None
                for impl, r in pair.items():
                    r.pop("hits", None)
                    rows.append({"part": "score", "device": device, "context": context, "method": method, "impl": impl,
                                 "same_hits": same, **r})
                    print(json.dumps(rows[-1]), flush=True)
    if "patch" in args.parts:
        rows.append({"part": "patch", "device": device, **_run(["patch", args.scale], args.timeout * 2)})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    _print_tables(rows)


def _print_tables(rows: list[dict]) -> None:
    score = [r for r in rows if r["part"] == "score"]
    if score:
        print("\n| context | method | impl | seconds | peak GiB | same hits |\n|---|---|---|---|---|---|")
        for r in score:
            cells = (f"{r['seconds']:.1f}", f"{r['peak_gib']:.1f}") if "seconds" in r else (r["error"], "-")
            print(f"| {r['context']} | {r['method']} | {r['impl']} | {cells[0]} | {cells[1]} | {r['same_hits']} |")
    for r in (r for r in rows if r["part"] == "patch"):
        if "error" in r:
            print(f"\npatching: {r['error']}")
            continue
        print(f"\none forward {r['forward_s']:.2f} s; patch_sweep of {r['heads']} heads {r['sweep_s']:.1f} s "
              f"({r['sweep_fwd_eq']:.1f} forward-eq, peak {r['sweep_peak_gib']:.1f} GiB); attribution_sweep "
              f"{r['attribution_s']:.2f} s ({r['attribution_fwd_eq']:.1f} forward-eq, peak {r['attribution_peak_gib']:.1f} GiB); "
              f"Spearman {r['spearman']:.3f}, top-{r['top_k']} overlap {r['top_overlap']}/{r['top_k']}")


if __name__ == "__main__":
    main()
