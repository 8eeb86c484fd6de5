"""What the embedded base model can do (issues 7 and 11), printed in one run.

1. Induction: TransformerLens's head detector (``detect_head(..., "induction_head")``) on repeated
   random tokens from the base's vocabulary, and the zero-ablation check: the loss on the
   repeats with the top induction heads knocked out (copying removed) against random heads.
2. Exact match on short ``kv`` and ``mdqa`` examples before any fine-tuning.
3. Sparse, causal retrieval heads (issue 11), per table (task@context): fine-tune a fresh copy on
   realistic examples as the study's tiny preset does (150 steps, batch 8, lr 1e-3, full
   fine-tuning), then exact match on 50 held-out examples; Wu et al.'s retrieval scores (decode
   mode) and the heads over 0.1 as a fraction of all heads; exact match with all of them knocked
   out (zero) against 5 random sets of as many heads drawn from the rest (each draw printed); and
   graded curves, the top-k heads against random k outside the retrieval heads, k = 1, 2, 4, 8.

Usage::

    python bench/bench_base.py                      # the shipped base
    python bench/bench_base.py --model-dir runs/base/model --tables mdqa@256 --curves never

Targets (bench, not tests): exact match >= 0.8; heads over 0.1 at most 20% of all heads; knocking
them out at least halves exact match; random heads from the rest cost at most 0.1 on average.
"""

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F


def repeated_random_text(model, *, segment: int, repeats: int, seed: int) -> tuple[str, torch.Tensor]:
    """A text of ``segment`` random vocabulary words repeated ``repeats`` times, and its tokens."""
    from rhlens.tasks import vocabulary

    rng = random.Random(seed)
    pool = [w for w in vocabulary() if w.isalnum()]
    words = [rng.choice(pool) for _ in range(segment)] * repeats
    text = " ".join(words)
    return text, model.to_tokens(text)


def repeat_loss(model, tokens: torch.Tensor, segment: int) -> float:
    """Mean next-token loss on every repeat after the first (copyable tokens only)."""
    with torch.no_grad():
        logits = model(tokens)
    lp = F.cross_entropy(logits[0, :-1], tokens[0, 1:], reduction="none")
    return float(lp[segment:].mean())  # positions past BOS + first segment


def induction_report(model, *, segment: int = 12, repeats: int = 8, n_seqs: int = 4, threshold: float = 0.5) -> dict:
    """Induction (and previous-token) scores, and the repeat loss with the top-k induction heads
    zero-ablated against k random heads outside the circuit, for k = 1, 2, 4 and all heads
    scoring over ``threshold``."""
    from transformer_lens.head_detector import detect_head

    import rhlens

    texts, token_rows = zip(*(repeated_random_text(model, segment=segment, repeats=repeats, seed=s) for s in range(n_seqs)))
    scores = torch.stack([detect_head(model, t, "induction_head", exclude_bos=True) for t in texts]).mean(0)
    heads = rhlens.HeadSet.above(scores, threshold) | rhlens.HeadSet.top_k(scores, 1)
    prev_scores = torch.stack([detect_head(model, t, "previous_token_head", exclude_bos=True) for t in texts]).mean(0)
    previous_token_heads = rhlens.HeadSet.above(prev_scores, threshold)

    def loss_without(ablated):
        with rhlens.knockout(model, ablated, mode="zero"):
            return round(sum(repeat_loss(model, t, segment) for t in token_rows) / n_seqs, 3)

    base_loss = round(sum(repeat_loss(model, t, segment) for t in token_rows) / n_seqs, 3)
    ranked = sorted(heads, key=lambda h: -float(scores[h.layer, h.head]))
    curve = {}
    for k in sorted({1, 2, 4, len(ranked)}):
        if k > len(ranked):
            continue
        top_k = rhlens.HeadSet(ranked[:k])
        # the control leaves the circuit's other half (previous-token heads) alone too
        pool = scores.numel() - len(heads | previous_token_heads)
        control = rhlens.random_heads(model, min(k, pool), exclude=heads | previous_token_heads, seed=k)
        curve[k] = {"induction_heads_ablated": loss_without(top_k), "random_heads_ablated": loss_without(control),
                    "random_heads": [str(h) for h in control]}
    return {
        "best_head": str(max(heads, key=lambda h: scores[h.layer, h.head])),
        "best_induction_score": round(float(scores.max()), 3),
        f"heads_over_{threshold}": {str(h): round(float(scores[h.layer, h.head]), 3) for h in heads},
        "repeat_loss": base_loss,
        "repeat_loss_with_top_k_heads_ablated": curve,
        f"previous_token_heads_over_{threshold}": {str(h): round(float(prev_scores[h.layer, h.head]), 3) for h in previous_token_heads},
    }


def exact_match_report(model, *, context_tokens: int, n: int = 50) -> dict:
    from rhlens.tools.pretrain import measure_abilities

    return {k: round(v, 3) for k, v in measure_abilities(model, context_tokens=context_tokens, n=n).items()}


def fine_tune(load, task: str, *, context_tokens: int, steps: int, batch_size: int, lr: float, seed: int = 1):
    """A fresh copy of the base fine-tuned with :func:`rhlens.train` on realistic ``task`` examples
    at ``context_tokens`` (full fine-tuning, the study's tiny preset by default)."""
    import rhlens
    from rhlens.tasks import generate

    model = load()
    if context_tokens + 16 > model.cfg.n_ctx:
        rhlens.extend_context(model, context_tokens + 64)
    train_ex = generate(task, "realistic", steps * batch_size, context_tokens=context_tokens, seed=seed)
    rhlens.train(model, train_ex, rhlens.TrainConfig(steps=steps, batch_size=batch_size, lr=lr,
                                                      warmup_steps=min(20, steps // 5), seed=seed, progress=False))
    model.eval()
    return model


def sparsity_report(load, task: str, *, context_tokens: int, steps: int, batch_size: int, lr: float, n_eval: int,
                    draws: int = 5, curves: str = "auto") -> dict:
    """Fine-tune, then: exact match; Wu retrieval scores (decode mode) and the heads over 0.1;
    knockout (zero) of all of them against ``draws`` random sets of as many heads from the rest;
    graded curves, top-k against random-k outside the retrieval heads (``curves``: ``"auto"`` when
    a target is not met, ``"always"`` or ``"never"``)."""
    import rhlens
    from rhlens.tasks import generate

    t0 = time.perf_counter()
    model = fine_tune(load, task, context_tokens=context_tokens, steps=steps, batch_size=batch_size, lr=lr)
    eval_ex = generate(task, "realistic", n_eval, context_tokens=context_tokens, seed=777)
    base = rhlens.evaluate(model, eval_ex, max_new_tokens=16, progress=False)
    scores = rhlens.retrieval_scores(model, eval_ex, method="decode", progress=False)
    grid = scores.scores
    retrieval = rhlens.HeadSet.above(grid, 0.1)
    n_heads = grid.numel()

    def em_without(heads) -> float:
        if not heads:
            return float(base.score)
        eff = rhlens.knockout_effect(model, eval_ex, heads, mode="zero", baseline=base, max_new_tokens=16, progress=False)
        return round(float(eff.knocked.score), 3)

    ranked = sorted(((float(grid[l, h]), rhlens.Head(l, h)) for l in range(grid.shape[0]) for h in range(grid.shape[1])),
                    key=lambda x: -x[0])
    k = len(retrieval)
    rest = n_heads - k
    out = {
        "task": f"{task}/realistic@{context_tokens}", "exact_match": round(float(base.score), 3),
        "n_heads": n_heads,
        "retrieval_heads_over_0.1": {str(h): round(float(grid[h.layer, h.head]), 3) for h in sorted(retrieval)},
        "fraction_over_0.1": round(k / n_heads, 3),
        "top_scores": [(str(h), round(v, 3)) for v, h in ranked[:8]],
        "examples_counted": int(scores.n_counted),
    }
    if k:
        out["em_all_retrieval_heads_out"] = em_without(retrieval)
        out["random_draws"] = []
        for d in range(draws):
            control = rhlens.random_heads(model, min(k, rest), exclude=retrieval, seed=100 + d)
            out["random_draws"].append({"heads": [str(h) for h in sorted(control)], "em": em_without(control)})
        costs = [out["exact_match"] - x["em"] for x in out["random_draws"]]
        out["random_mean_cost"] = round(sum(costs) / len(costs), 3)
    if curves == "always" or (curves == "auto" and "NOT met" in verdict(out)):
        curve = {}
        for j in (1, 2, 4, 8):
            top = rhlens.HeadSet(h for _, h in ranked[:j])
            randoms = [em_without(rhlens.random_heads(model, j, exclude=retrieval | top, seed=200 + d)) for d in range(draws)]
            curve[j] = {"top_k": em_without(top), "random_k": randoms, "random_k_mean": round(sum(randoms) / len(randoms), 3)}
        out["graded_curve"] = curve
    out["minutes"] = round((time.perf_counter() - t0) / 60, 1)
    return out


def verdict(rep: dict) -> str:
    """The issue-11 targets, met or not, for one table."""
    em = rep["exact_match"]
    checks = {
        "exact match >= 0.8": em >= 0.8,
        "heads over 0.1 <= 20%": 0 < rep["fraction_over_0.1"] <= 0.2,
        "knockout of them at least halves EM": "em_all_retrieval_heads_out" in rep and rep["em_all_retrieval_heads_out"] <= em / 2,
        "random heads cost <= 0.1 on average": "random_mean_cost" in rep and rep["random_mean_cost"] <= 0.1,
    }
    return "; ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in checks.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="an rhlens.save_model folder (default: the shipped base)")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--steps", type=int, default=150, help="fine-tuning steps (the study's tiny preset: 150)")
    parser.add_argument("--batch-size", type=int, default=8, help="fine-tuning batch (tiny preset: 8)")
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate (tiny preset: 1e-3)")
    parser.add_argument("--n-eval", type=int, default=50)
    parser.add_argument("--tables", default="mdqa@256,kv@256,musique@256,mdqa@512",
                        help="comma-separated task@context tables to measure")
    parser.add_argument("--curves", choices=("auto", "always", "never"), default="auto",
                        help="graded top-k / random-k curves: auto = when a target is not met")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    import rhlens

    rhlens.retrieval_scores, rhlens.knockout_effect  # import now: fail before any fine-tuning  # noqa: B018
    load = (lambda: rhlens.load_model(args.model_dir)) if args.model_dir else rhlens.load_base
    model = load()
    print(f"model: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads ({model.cfg.n_layers * model.cfg.n_heads} in all), "
          f"d_head {model.cfg.d_head}, d_model {model.cfg.d_model}, n_ctx {model.cfg.n_ctx}", flush=True)
    ind = induction_report(model)
    print("induction:", ind, flush=True)
    print("exact match at 128 tokens (no fine-tuning):", exact_match_report(model, context_tokens=128, n=args.n_eval), flush=True)
    if args.skip_finetune:
        return
    print(f"fine-tuning: {args.steps} steps, batch {args.batch_size}, lr {args.lr:g}, full fine-tuning; "
          f"{args.n_eval} held-out examples; knockout mode zero; retrieval scores decode mode", flush=True)
    for spec in args.tables.split(","):
        task, ctx = spec.split("@")
        rep = sparsity_report(load, task, context_tokens=int(ctx), steps=args.steps, batch_size=args.batch_size,
                              lr=args.lr, n_eval=args.n_eval, curves=args.curves)
        print(json.dumps(rep), flush=True)
        print(f"targets {rep['task']}: {verdict(rep)}", flush=True)


if __name__ == "__main__":
    main()
