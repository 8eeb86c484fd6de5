"""What the embedded base model can do (issue 7's targets), printed.

1. Induction: TransformerLens's head detector (``detect_head(..., "induction_head")``) on repeated
   random tokens from the base's vocabulary, and the zero-ablation check: the loss on the
   repeats with the top induction heads knocked out (copying removed) against 3 random heads.
2. Exact match on short ``kv`` and ``mdqa`` examples at the base's training context.
3. Fine-tuning speed: how many ``rhlens.train`` steps bring realistic MDQA at 256 and 512 tokens
   to 0.8 exact match (evaluated every ``--eval-every`` steps on held-out examples).

Usage::

    python bench/bench_base.py                      # the shipped base
    python bench/bench_base.py --model-dir runs/base/model --skip-finetune

Targets (bench, not tests): some head's induction score >= 0.8; 0.8 exact match on realistic MDQA
at 256 tokens within 300 steps and at 512 within 600 steps, on 2 CPU cores.
"""

import argparse
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
    from rhlens.pretrain import measure_abilities

    return {k: round(v, 3) for k, v in measure_abilities(model, context_tokens=context_tokens, n=n).items()}


def steps_to_target(load, *, context_tokens: int, budget: int, eval_every: int, target: float, n_eval: int,
                    lr: float = 1e-3) -> dict:
    """Fine-tune a fresh copy of the base on realistic MDQA; first step whose EM >= target."""
    import rhlens
    from rhlens.tasks import generate

    model = load()
    if context_tokens + 16 > model.cfg.n_ctx:
        rhlens.extend_context(model, context_tokens + 64)
    batch = 16
    train_ex = generate("mdqa", "realistic", budget * batch, context_tokens=context_tokens, seed=1)
    eval_ex = generate("mdqa", "realistic", n_eval, context_tokens=context_tokens, seed=777)

    def em(m):
        return {"em": rhlens.evaluate(m, eval_ex, max_new_tokens=8, progress=False).score}

    t0 = time.perf_counter()
    result = rhlens.train(
        model, train_ex,
        rhlens.TrainConfig(steps=budget, batch_size=batch, lr=lr, warmup_steps=20, eval_every=eval_every, progress=False),
        eval_fn=em,
    )
    curve = [(int(r["step"]), round(float(r["em"]), 3)) for r in result.eval_curve]
    reached = next((s for s, v in curve if v >= target), None)
    return {"context_tokens": context_tokens, "budget": budget, "lr": lr, "steps_to_0.8": reached, "curve": curve,
            "minutes": round((time.perf_counter() - t0) / 60, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="an rhlens.save_model folder (default: the shipped base)")
    parser.add_argument("--skip-finetune", action="store_true")
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--n-eval", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3, help="fine-tuning learning rate")
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    import rhlens

    load = (lambda: rhlens.load_model(args.model_dir)) if args.model_dir else rhlens.load_base
    model = load()
    print(f"model: {model.cfg.n_layers} layers x {model.cfg.n_heads} heads, d_model {model.cfg.d_model}, n_ctx {model.cfg.n_ctx}")
    ind = induction_report(model)
    print("induction:", ind)
    print("target: best induction score >= 0.8 ->", "met" if ind["best_induction_score"] >= 0.8 else "NOT met")
    print("exact match at 128 tokens:", exact_match_report(model, context_tokens=128, n=args.n_eval))
    if not args.skip_finetune:
        for ctx, budget in ((256, 300), (512, 600)):
            rep = steps_to_target(load, context_tokens=ctx, budget=budget, eval_every=args.eval_every, target=0.8,
                                  n_eval=args.n_eval, lr=args.lr)
            verdict = "met" if rep["steps_to_0.8"] is not None else "NOT met"
            print(f"fine-tune realistic MDQA @ {ctx}: {rep}  target (0.8 EM within {budget} steps) -> {verdict}")


if __name__ == "__main__":
    main()
