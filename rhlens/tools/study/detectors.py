"""Head detectors side by side on a user's model: what ``rhlens detectors`` and the study's
detectors stage run (:func:`run_detectors`).

:func:`rhlens.compare_detectors` gives every detector's scores and their agreement;
:func:`rhlens.knockout_curves` knocks out each detector's top-k heads against random-k. Files
written into ``out``: ``detectors.json`` (scores, agreement, curves), one
``<detector>.safetensors`` per detector, and ``detectors.html`` (the curves figure and one heatmap
per detector).
"""

import argparse
from pathlib import Path
from typing import Any, Callable, Sequence

from rhlens.files import write_json_atomic
from rhlens.tools.arguments import at_least


def detectors_summary(comparison: Any, curves: Any) -> dict[str, Any]:
    """JSON-ready: the comparison (:meth:`DetectorComparison.to_dict`), the curves
    (:meth:`KnockoutCurves.to_dict`) and each detector's drop at every k against the random mean."""
    drops = {name: [round(float(v), 6) for v in curves.drop(name)] for name in curves.curves}
    return {**comparison.to_dict(), "knockout": curves.to_dict(), "drop": drops,
            "random_drop": [round(float(v), 6) for v in curves.random_drop()]}


def run_detectors(
    model: Any, examples: Sequence[Any], out: Path, *, detectors: Sequence[str], ks: Sequence[int] = (1, 2, 3, 5, 8),
    n_random: int = 3, n_boot: int = 200, seed: int = 0, max_new_tokens: int = 32, batch_size: int = 8,
    progress: bool = True, title: str = "rhlens detectors",
) -> dict[str, Any]:
    """Compare ``detectors`` on ``model`` and ``examples``, knock out each one's top-k heads, and
    write the files of the module docstring into ``out``; returns the summary."""
    from rhlens import plot
    from rhlens.interventions import knockout_curves
    from rhlens.scoring import compare_detectors

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmp = compare_detectors(model, examples, detectors=detectors, n_boot=n_boot, seed=seed,
                            max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    curves = knockout_curves(model, examples, cmp.scores, ks=ks, n_random=n_random, seed=seed, batch_size=batch_size,
                             progress=progress)
    for name, hs in cmp.scores.items():
        hs.save(out / f"{name}.safetensors")
    summary = detectors_summary(cmp, curves)
    write_json_atomic(out / "detectors.json", summary)
    figures = [("Knockout curves", plot.knockout_curves_figure(curves))]
    figures += [(f"{name} scores", plot.head_heatmap(hs.scores, title=name)) for name, hs in cmp.scores.items()]
    plot.write_html(figures, out / "detectors.html", title=title, intro=f"{len(examples)} examples; detectors {', '.join(cmp.scores)}.")
    return summary


def _ci(v: Any, ci: Any) -> str:
    if v is None:
        return "n/a"
    lo, hi = ci if ci else (None, None)
    return f"{v:+.2f}" + (f" [{lo:+.2f}, {hi:+.2f}]" if lo is not None and hi is not None else "")


def detectors_markdown(rec: dict[str, Any]) -> str:
    """The report's section of one detectors record: the agreement table (Spearman and top-k overlap
    with their bootstrap intervals) and each detector's knockout drop per k against random heads."""
    ks = rec["ks"]
    head = ["detectors", "Spearman [95% CI]", *(f"top-{k} overlap [95% CI]" for k in ks)]
    rows = [[f"{r['a']} / {r['b']}", _ci(r["spearman"], r["spearman_ci"]),
             *(_ci(r["overlap"][str(k)], r["overlap_ci"][str(k)]) for k in ks)] for r in rec["agreement"]]
    ko = rec["knockout"]
    head2 = ["heads knocked out", *(f"k={k}" for k in ko["ks"])]
    rows2 = [[f"top-k of {name}", *(f"{v:+.3f}" for v in drops)] for name, drops in rec["drop"].items()]
    rows2.append(["random k (mean)", *(f"{v:+.3f}" for v in rec["random_drop"])])

    def table(h: list[str], rs: list[list[str]]) -> str:
        return "\n".join(["| " + " | ".join(h) + " |", "|" + "---|" * len(h), *("| " + " | ".join(r) + " |" for r in rs)])

    return (table(head, rows) + f"\n\nDrop in {ko['metric']} (intact {ko['baseline']:.3f}) when each detector's top-k "
            "heads are knocked out, against random heads outside every detector's top k:\n\n" + table(head2, rows2))


def detectors_figure(task: str, rec: dict[str, Any]) -> Any:
    """The knockout-curves figure of one detectors record."""
    from rhlens import plot

    return plot.knockout_curves_figure(rec["knockout"], title=f"{task}: each detector's top-k heads knocked out")


# ---- rhlens detectors ------------------------------------------------------------------------
def add_detectors_arguments(d: argparse.ArgumentParser, generate_hint: str) -> None:
    """The options of ``rhlens detectors`` (the command line's ``--no-progress`` and ``--threads``
    come from :mod:`rhlens.cli`)."""
    from rhlens.tasks import task_names  # torch-free

    d.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=task_names(), help="generate examples of this task")
    src.add_argument("--examples", type=Path, help=f"JSONL file of rhlens.Example records ({generate_hint})")
    d.add_argument("--variant", default="realistic", help="with --task: the variant")
    d.add_argument("--context-tokens", type=at_least(8), default=256, help="with --task: prompt length in tokens")
    d.add_argument("--n", type=at_least(1), default=24, help="examples (with --examples: the first N)")
    d.add_argument("--detectors", default=None,
                   help="comma-separated detectors to compare (default: all: decode, forced, attention_mass, query_focus, attribution)")
    d.add_argument("--ks", default="1,2,3,5,8", help="heads knocked out per detector, comma-separated")
    d.add_argument("--n-random", type=at_least(0), default=3, help="random head sets per k (outside every detector's top k)")
    d.add_argument("--n-boot", type=at_least(0), default=200, help="bootstrap draws over examples for the intervals")
    d.add_argument("--max-new-tokens", type=at_least(1), default=32, help="Wu's decoding budget (decode)")
    d.add_argument("--batch-size", type=at_least(1), default=8, help="examples per forward pass")
    d.add_argument("--seed", type=int, default=0, help="seed of the knockout curves' random head sets")
    d.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:0 ...")
    d.add_argument("--out", type=Path, required=True, help="results folder (new or empty, or --overwrite)")
    d.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")


def detectors_command(args: argparse.Namespace, *, check_out: Callable[[], None], before_run: Callable[[], None]) -> list[str]:
    """Run ``rhlens detectors`` (names and ks checked, then ``check_out()``, before anything loads;
    ``before_run()`` right before the work); returns the lines to print."""
    from rhlens.scoring.compare import DETECTORS, check_detectors
    from rhlens.models.folder import load_folder
    from rhlens.tools.study.pieces import load_examples

    names = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else list(DETECTORS)
    detectors = check_detectors(names, what="--detectors")
    try:
        ks = [int(k) for k in args.ks.split(",") if k.strip()]
    except ValueError:
        raise ValueError(f"--ks {args.ks!r}: give whole numbers separated by commas, e.g. 1,2,3,5") from None
    check_out()
    model = load_folder(args.model, device=args.device)
    if args.examples is not None:
        examples = load_examples(args.examples, args.n)
    else:
        from rhlens.adapter import tokenizer_of
        from rhlens.tasks import generate

        examples = generate(args.task, args.variant, args.n, context_tokens=args.context_tokens,
                            tokenizer=tokenizer_of(model), seed=args.seed)
    before_run()
    s = run_detectors(model, examples, args.out, detectors=detectors, ks=ks, n_random=args.n_random, n_boot=args.n_boot,
                      seed=args.seed, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
                      progress=not args.no_progress, title=f"rhlens detectors: {args.model}")
    lines = []
    for row in s["agreement"]:
        rho = "n/a" if row["spearman"] is None else f"{row['spearman']:+.2f}"
        lines.append(f"{row['a']:>14s} vs {row['b']:<14s} Spearman {rho}")
    lines.append(f"drop in {s['knockout']['metric']} with the top-k heads out, k = {s['knockout']['ks']}:")
    lines += [f"  {name:14s} " + " ".join(f"{v:+.3f}" for v in drops) for name, drops in s["drop"].items()]
    lines.append(f"  {'random':14s} " + " ".join(f"{v:+.3f}" for v in s["random_drop"]))
    lines.append(f"Results written to {args.out}: detectors.json, detectors.html, <detector>.safetensors")
    return lines
