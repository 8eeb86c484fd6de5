"""Benchmark: rhlens.patch_sweep vs TransformerLens's own head sweep, and attribution patching.

Part 1, ``sweep``: the same random-weight source and target (Llama-shaped, ``--layers`` x
``--heads``) and the same examples (``--examples`` prompts of ``--tokens`` tokens, all one
length so TransformerLens runs them as one unpadded batch) are swept by

- TransformerLens: ``transformer_lens.patching.get_act_patch_attn_head_out_all_pos`` (one full
  forward of the target per head, the source's ``hook_z`` from ``run_with_cache``), metric the
  mean answer log-prob, and
- rhlens: :func:`rhlens.patch_sweep` (residual reused before the patched layer, heads batched,
  answer-only unembedding).

It prints both wall times, their ratio and the largest difference between the two effect maps.

Part 2, ``attribution`` (``--attribution``): :func:`rhlens.interventions.attribution_sweep` against
the exact sweep on two fine-tuned copies of the shipped base (see :func:`attribution_part`):
Spearman correlation, top-10 overlap, cost in forward-equivalents (median of ``--repeats``
rounds, each against a forward-equivalent timed in the same round), the same with AtP*'s gradient
dropout (its GradDrop score ranked against the exact effects' magnitudes), and the exact sweep of
the nominated heads.

Run: ``python bench/bench_patching.py`` (``--attribution`` adds part 2; ``--skip-sweep`` runs only
part 2).
"""

import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

WORDS = [f"w{i}" for i in range(300)]


def timed(fn):
    """``(fn(), wall seconds, process CPU seconds)``. On a shared machine the CPU time is the
    steadier cost: waiting for a core is not counted."""
    w, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w, time.process_time() - c


def equal_length_examples(n: int, n_words: int, seed: int = 0):
    """``n`` prompts of ``n_words`` words (one token each under the word-level tokenizer) whose
    answer is one word copied from a needle in the middle."""
    from rhlens.tasks.example import Example

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(n_words - 2)]
        at = rng.randrange(n_words // 4, n_words // 2)
        start = len(" ".join(words[:at])) + 1
        prompt = " ".join(words) + " Answer:"
        out.append(Example(prompt=prompt, answer=words[at], needles=((start, start + len(words[at])),), task="niah",
                           variant="symbolic"))
    return out


def sweep_part(args) -> None:
    from transformer_lens import patching

    from rhlens import patch_sweep
    from rhlens.encoding import encode_for_model
    from rhlens.models import tiny_llama, word_level_tokenizer

    torch.manual_seed(0)
    examples = equal_length_examples(args.examples, args.tokens - 2)
    tok = word_level_tokenizer([e.prompt + e.completion for e in examples])
    cfg = dict(n_layers=args.layers, n_heads=args.heads, d_head=args.d_head, d_model=args.heads * args.d_head,
               d_mlp=int(2.7 * args.heads * args.d_head), n_ctx=max(512, args.tokens + 8))
    source, target = tiny_llama(tokenizer=tok, seed=1, **cfg), tiny_llama(tokenizer=tok, seed=2, **cfg)
    encoded = encode_for_model(target, examples, what="bench", with_answer=True, append_eos=False)
    lengths = {len(e.tokens) for e in encoded}
    assert len(lengths) == 1, f"examples must share one length, got {lengths}"
    tokens = torch.tensor([e.tokens for e in encoded])
    spans = [e.completion_span for e in encoded]

    def metric(logits):  # mean over examples of the summed answer log-prob
        lp = logits.double().log_softmax(-1)
        per = [sum(lp[b, i - 1, tokens[b, i]] for i in range(s, e)) for b, (s, e) in enumerate(spans)]
        return torch.stack(per).mean()

    print(f"config: {args.layers} layers x {args.heads} heads (d_head {args.d_head}, d_model {cfg['d_model']}), "
          f"{args.examples} examples x {tokens.shape[1]} tokens, torch threads {torch.get_num_threads()}")
    def tl_sweep():
        with torch.no_grad():
            _, clean_cache = source.run_with_cache(tokens)
            base = metric(target(tokens))
            return patching.get_act_patch_attn_head_out_all_pos(target, tokens, clean_cache, metric) - base

    tl, t_tl, c_tl = timed(tl_sweep)
    sweep, t_rh, c_rh = timed(lambda: patch_sweep(source, target, examples, batch_size=args.examples, progress=False))
    diff = (sweep.effect.double() - tl.double().cpu()).abs().max().item()
    n_fwd = args.layers * args.heads + 2
    print(f"TransformerLens get_act_patch_attn_head_out_all_pos: {t_tl:.2f} s wall, {c_tl:.2f} s CPU ({n_fwd} forwards)")
    print(f"rhlens patch_sweep:                                 {t_rh:.2f} s wall, {c_rh:.2f} s CPU")
    print(f"speed-up: {t_tl / t_rh:.1f}x wall, {c_tl / c_rh:.1f}x CPU   max |effect difference|: {diff:.2e}   "
          f"(largest |effect| {tl.abs().max().item():.3f})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--d-head", type=int, default=16)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--examples", type=int, default=4)
    p.add_argument("--attribution", action="store_true")
    p.add_argument("--skip-sweep", action="store_true")
    p.add_argument("--steps", type=int, default=40, help="fine-tuning steps per model (part 2)")
    p.add_argument("--attr-examples", type=int, default=32, help="evaluation examples (part 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed rounds of part 2's costs (medians reported)")
    args = p.parse_args()
    if not args.skip_sweep:
        sweep_part(args)
    if args.attribution or args.skip_sweep:
        attribution_part(args)


def _ranks(x: torch.Tensor) -> torch.Tensor:
    r = torch.empty_like(x, dtype=torch.float64)
    r[x.argsort()] = torch.arange(len(x), dtype=torch.float64)
    return r


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two flattened tensors (no ties expected in float effects)."""
    ra, rb = _ranks(a.flatten().double()), _ranks(b.flatten().double())
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()))


def fine_tuned_pair(steps: int, n_train: int = 64, context: int = 200):
    """Two copies of the shipped base fine-tuned (all weights, ``steps`` AdamW steps, lr 1e-3)
    on MDQA ``realistic`` (the source, standing in for the real-data model) and MDQA ``symbolic``
    (the target, a synthetic-data model)."""
    import rhlens
    from rhlens.tasks.generators import generate

    out = []
    for variant, seed in (("realistic", 1), ("symbolic", 2)):
        model = rhlens.load_base()
        data = generate("mdqa", variant, n_train, context_tokens=context, tokenizer=model.tokenizer, seed=seed)
        cfg = rhlens.TrainConfig(lr=1e-3, steps=steps, batch_size=8, warmup_steps=2, seed=seed, progress=False)
        res = rhlens.train(model, data, cfg)
        print(f"fine-tuned base on mdqa/{variant}: {steps} steps, final loss {res.loss_curve[-1]:.3f}")
        out.append(model.eval())
    return out


def repeated_costs(reference, runs: dict, repeats: int) -> dict:
    """Each of ``runs`` (name -> function) and the ``reference`` (one forward-equivalent)
    ``repeats`` times, interleaved, after one warm-up call of each: ``{name: (wall seconds, CPU
    seconds)}`` per round, the reference under ``"reference"``."""
    reference()
    for fn in runs.values():
        fn()
    out = {name: ([], []) for name in ["reference", *runs]}
    for _ in range(repeats):
        for name, fn in [("reference", reference), *runs.items()]:
            _, w, c = timed(fn)
            out[name][0].append(w)
            out[name][1].append(c)
    return out


def _median(xs: list) -> float:
    return sorted(xs)[len(xs) // 2]


def _costs_line(name: str, times: tuple, reference: tuple) -> str:
    """Cost in forward-equivalents: median seconds over median reference seconds (and min over min,
    the least disturbed rounds), wall and CPU."""
    (wall, cpu), (ref_w, ref_c) = times, reference
    return (f"{name}: {_median(wall) / _median(ref_w):.2f} wall / {_median(cpu) / _median(ref_c):.2f} CPU "
            f"forward-equivalents (median/median; min/min {min(wall) / min(ref_w):.2f} / {min(cpu) / min(ref_c):.2f}); "
            f"seconds wall {' '.join(f'{x:.2f}' for x in wall)}, CPU {' '.join(f'{x:.2f}' for x in cpu)}")


def attribution_part(args) -> None:
    import rhlens
    from rhlens import engine
    from rhlens.encoding import encode_for_model
    from rhlens.interventions import attribution_sweep
    from rhlens.tasks.generators import generate

    source, target = fine_tuned_pair(args.steps)
    examples = generate("mdqa", "realistic", args.attr_examples, context_tokens=200, tokenizer=target.tokenizer, seed=9)
    encoded = encode_for_model(target, examples, what="bench", with_answer=True, append_eos=False)
    bs = 8
    print(f"attribution: {args.attr_examples} mdqa/realistic examples "
          f"({min(len(e.tokens) for e in encoded)}-{max(len(e.tokens) for e in encoded)} tokens), batch {bs}, "
          f"{target.cfg.n_layers} x {target.cfg.n_heads} heads, torch threads {torch.get_num_threads()}")
    load0 = os.getloadavg()
    costs = repeated_costs(
        lambda: engine.answer_logprobs([target], encoded, batch_size=bs, progress=False),
        {"attribution": lambda: attribution_sweep(source, target, examples, batch_size=bs, progress=False),
         "attribution + gradient dropout": lambda: attribution_sweep(source, target, examples, batch_size=bs,
                                                                     gradient_dropout=True, progress=False)},
        args.repeats,
    )
    load1 = os.getloadavg()
    attr = attribution_sweep(source, target, examples, batch_size=bs, gradient_dropout=True, progress=False)
    exact, t_exact, c_exact = timed(lambda: rhlens.patch_sweep(source, target, examples, batch_size=bs, progress=False))
    k = min(10, attr.effect.numel() // 2)
    nominated = attr.top(k)
    overlap = len(nominated & exact.top(k))
    by_abs = rhlens.HeadSet.top_k(exact.effect.abs(), k)
    abs_overlap = len(rhlens.HeadSet.top_k(attr.effect.abs(), k) & by_abs)
    gd_overlap = len(rhlens.HeadSet.top_k(attr.graddrop, k) & by_abs)
    confirm = rhlens.patch_sweep(source, target, examples, heads=nominated, batch_size=bs, progress=False)
    conf = torch.stack([confirm.effect[h.layer, h.head] for h in nominated.ordered()])
    same = max(abs(float(confirm.effect[h.layer, h.head] - exact.effect[h.layer, h.head])) for h in nominated.ordered())
    ref_w, ref_c = costs["reference"]
    print(f"exact effects: max |effect| {exact.effect.abs().max():.4f}, mean |effect| {exact.effect.abs().mean():.4f}")
    print(f"Spearman(attribution, exact) over {attr.effect.numel()} heads: {spearman(attr.effect, exact.effect):.3f}; "
          f"Spearman(GradDrop score, |exact|): {spearman(attr.graddrop, exact.effect.abs()):.3f} "
          f"(|attribution| vs |exact|: {spearman(attr.effect.abs(), exact.effect.abs()):.3f})")
    print(f"top-{k} overlap (signed effect): {overlap}/{k}; by |effect|: {abs_overlap}/{k}; "
          f"GradDrop score vs |exact effect|: {gd_overlap}/{k}")
    print(f"one forward-equivalent (target answer_logprobs over the examples), {args.repeats} rounds: "
          f"seconds wall {' '.join(f'{x:.2f}' for x in ref_w)}, CPU {' '.join(f'{x:.2f}' for x in ref_c)}; "
          f"load average {load0[0]:.2f} before, {load1[0]:.2f} after")
    for name in ("attribution", "attribution + gradient dropout"):
        print("cost, " + _costs_line(name, costs[name], costs["reference"]))
    print(f"exact sweep (one run): {t_exact / _median(ref_w):.1f} wall, {c_exact / _median(ref_c):.1f} CPU forward-equivalents")
    print(f"exact sweep of the {k} nominated heads: {', '.join(f'{h}:{float(e):+.4f}' for h, e in zip(nominated.ordered(), conf))}; "
          f"{int((conf > 0).sum())}/{k} raise the answer log-prob; max difference from the full sweep {same:.1e}")


if __name__ == "__main__":
    main()
