"""The ``rhlens`` command line.

Subcommands:

- ``rhlens quickstart --out DIR``: the smallest end-to-end study on the embedded default: load the
  shipped base model, fine-tune it on synthetic key-value retrieval, evaluate, score every head's
  retrieval ability, knock out the top heads and random heads, and write the results.
- ``rhlens pretrain-base --config FILE --out DIR [--resume]``: train the embedded base model.

Results are returned by the library; this module only parses arguments and prints.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rhlens", description="Retrieval heads for synthetic long-context fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="fine-tune the embedded base briefly, then score and knock out retrieval heads")
    q.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="results folder")
    q.add_argument("--task", default="kv", help="task to fine-tune and evaluate on (default kv)")
    q.add_argument("--variant", default="realistic", help="task variant (default realistic)")
    q.add_argument("--context-tokens", type=int, default=64)
    q.add_argument("--steps", type=int, default=150, help="fine-tuning steps")
    q.add_argument("--n-eval", type=int, default=40, help="evaluation / scoring examples")
    q.add_argument("--top-k", type=int, default=4, help="heads to knock out")
    q.add_argument("--seed", type=int, default=0)
    _add_progress(q)

    p = sub.add_parser("pretrain-base", help="train the embedded base model from a recipe")
    p.add_argument("--config", type=Path, default=None, help="recipe TOML (default: rhlens/recipes/base.toml)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_progress(p)
    return parser


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from rhlens.quickstart import run_quickstart

    summary = run_quickstart(
        args.out, task=args.task, variant=args.variant, context_tokens=args.context_tokens, steps=args.steps,
        n_eval=args.n_eval, top_k=args.top_k, seed=args.seed, progress=not args.no_progress,
    )
    print(json.dumps(summary, indent=2))
    print(f"\nResults written to {args.out}")
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from rhlens.pretrain import pretrain_base

    result = pretrain_base(args.config, args.out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({"model_dir": str(result.model_dir), "steps": result.steps,
                      "minutes": round(result.seconds / 60, 2), "abilities": result.abilities}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"quickstart": _cmd_quickstart, "pretrain-base": _cmd_pretrain}
    try:
        return handlers[args.command](args)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"rhlens {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
