"""``rhlens detectors``: head detectors side by side on a user's model (its options and its handler)."""

import argparse
from pathlib import Path

from rhlens.cli.common import GENERATE_HINT, add_progress, prepare_out, say_threads
from rhlens.tools.arguments import at_least


def add_detectors(sub: "argparse._SubParsersAction") -> None:
    d = sub.add_parser("detectors", help="head detectors side by side: agreement and knockout curves; JSON and a page")
    d.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=("mdqa", "musique", "summhay", "kv", "niah"), help="generate examples of this task")
    src.add_argument("--examples", type=Path, help=f"JSONL file of rhlens.Example records ({GENERATE_HINT})")
    d.add_argument("--variant", default="realistic", help="with --task: the variant")
    d.add_argument("--context-tokens", type=int, default=256, help="with --task: prompt length in tokens")
    d.add_argument("--n", type=int, default=24, help="examples (with --examples: the first N)")
    d.add_argument("--detectors", default=None,
                   help="comma-separated detectors to compare (default: all: decode, forced, attention_mass, query_focus, attribution)")
    d.add_argument("--ks", default="1,2,3,5,8", help="heads knocked out per detector, comma-separated")
    d.add_argument("--n-random", type=at_least(0), default=3, help="random head sets per k (outside every detector's top k)")
    d.add_argument("--n-boot", type=int, default=200, help="bootstrap draws over examples for the intervals")
    d.add_argument("--max-new-tokens", type=int, default=32, help="Wu's decoding budget (decode)")
    d.add_argument("--batch-size", type=int, default=8)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu")
    d.add_argument("--out", type=Path, required=True, help="results folder (new or empty, or --overwrite)")
    d.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    add_progress(d)


def cmd_detectors(args: argparse.Namespace) -> int:
    from rhlens.scoring.compare import DETECTORS, check_detectors
    from rhlens.tools.study.detectors import run_detectors
    from rhlens.tools.study.pieces import load_any_model, load_examples

    names = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else list(DETECTORS)
    detectors = check_detectors(names, what="--detectors")
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    prepare_out(args.out, args.overwrite)
    model = load_any_model(args.model, device=args.device)
    if args.examples is not None:
        examples = load_examples(args.examples, args.n)
    else:
        from rhlens.adapter import tokenizer_of
        from rhlens.tasks import generate

        examples = generate(args.task, args.variant, args.n, context_tokens=args.context_tokens,
                            tokenizer=tokenizer_of(model), seed=args.seed)
    say_threads(args)
    s = run_detectors(model, examples, args.out, detectors=detectors, ks=ks, n_random=args.n_random, n_boot=args.n_boot,
                      seed=args.seed, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                      progress=not args.no_progress, title=f"rhlens detectors: {args.model}")
    for row in s["agreement"]:
        rho = "n/a" if row["spearman"] is None else f"{row['spearman']:+.2f}"
        print(f"{row['a']:>14s} vs {row['b']:<14s} Spearman {rho}")
    k = s["knockout"]["ks"]
    print(f"drop in {s['knockout']['metric']} with the top-k heads out, k = {k}:")
    for name, drops in s["drop"].items():
        print(f"  {name:14s} " + " ".join(f"{v:+.3f}" for v in drops))
    print(f"  {'random':14s} " + " ".join(f"{v:+.3f}" for v in s["random_drop"]))
    print(f"Results written to {args.out}: detectors.json, detectors.html, <detector>.safetensors")
    return 0
