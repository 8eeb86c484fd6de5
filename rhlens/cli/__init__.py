"""The ``rhlens`` command line.

Subcommands:

- ``rhlens study --out DIR [--preset tiny|smoke|paper] [--config FILE] [--task T|all] [--base PATH]
  [--dry-run] [--overwrite]``: the paper's whole pipeline (:class:`rhlens.Study`): data, fine-tunes,
  evaluation, retrieval scores, comparison, knockout and patching, with ``results.json``,
  ``report.md`` and ``report.html``. ``--dry-run`` checks every path and prints the plan and a cost
  estimate without loading weights.
- ``rhlens scores / knockout / patch``: the study's pieces on your own model folder(s) and a JSONL
  file of examples, writing JSON (and a heatmap page for scores).
- ``rhlens detectors --model DIR (--task T | --examples FILE) --out DIR``: head detectors side by
  side (Wu's decode and forced scores, attention mass, QRHead's query focus, attribution), their
  agreement and knockout curves (:func:`rhlens.compare_detectors`, :func:`rhlens.knockout_curves`).
- ``rhlens quickstart --out DIR``: the smallest end-to-end run on the embedded default.
- ``rhlens pretrain-base --config FILE --out DIR [--resume]``: train the embedded base model.

Every error is one line on stderr naming the problem, with exit code 2 (set ``RHLENS_DEBUG=1`` for
the traceback); Ctrl-C is not caught. ``--out`` is checked before any work.
"""

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from rhlens.cli.parser import ALL_TASKS, BOTH_METHODS, build_parser

__all__ = ["build_parser", "error_line", "main"]


# ---- study ----------------------------------------------------------------------------------------
def _study_config(args: argparse.Namespace):
    from rhlens.tasks import studied_tasks
    from rhlens.tools.study import StudyConfig

    config = StudyConfig.from_file(args.config) if args.config else StudyConfig.preset(args.preset or "tiny")
    if args.task:
        config = config.replace(tasks=studied_tasks() if args.task == ALL_TASKS else (args.task,))
    if args.base:
        config = config.with_base(args.base)
    return config


def _cmd_study(args: argparse.Namespace) -> int:
    from rhlens.tools.study import Study

    study = Study(_study_config(args), args.out, overwrite=args.overwrite, progress=not args.no_progress)
    if args.dry_run:
        notes = study.check()
        plan = study.plan()
        print(f"study {study.config.name!r}: dry run, no weights loaded")
        for note in notes:
            print(f"  ok  {note}")
        print(json.dumps(plan, indent=2))
        print(f"estimated cost: {plan['total_flops']:.3g} FLOPs, about {plan['estimated_hours']} h at "
              f"{plan['flops_per_second']:.3g} FLOP/s ([estimate] flops_per_second)")
        return 0
    study.check()
    _say_threads(args)
    results = study.run()
    print(f"Results written to {args.out}: results.json, report.md, report.html")
    for task, entry in results["tasks"].items():
        for f in entry["findings"]:
            print(f"{task} | {f['title']}: {f['verdict']}. {f['text']}")
    return 0


# ---- pieces ---------------------------------------------------------------------------------------
def _prepare_out(out: Path, overwrite: bool) -> None:
    """Check a pieces command's ``--out`` before any work: a folder we can write, new or empty
    unless ``--overwrite``."""
    from rhlens.tools.study.folder import check_writable

    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"--out {out} is not empty; choose a new folder or pass --overwrite")
    check_writable(out)


def _say_threads(args: argparse.Namespace) -> None:
    """Say (on stderr) how many threads the command ran or runs on (after its checks, so an error
    stays the only line on stderr)."""
    print(args.threads_note, file=sys.stderr)


def _common(args: argparse.Namespace) -> dict:
    return dict(n=args.n, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device=args.device,
                dtype=args.dtype, progress=not args.no_progress)


def _cmd_scores(args: argparse.Namespace) -> int:
    from rhlens.tools.study.pieces import run_scores
    from rhlens.tools.study.sections import score_methods

    known = score_methods()
    if args.method != BOTH_METHODS and args.method not in known:
        raise ValueError(f"--method {args.method!r}: use one of {', '.join(known)} or {BOTH_METHODS}")
    _prepare_out(args.out, args.overwrite)
    methods = known if args.method == BOTH_METHODS else (args.method,)
    summary = run_scores(args.model, args.examples, args.out, methods=methods, threshold=args.threshold,
                         rouge_gate=args.rouge_gate, **_common(args))
    for method, rec in summary["methods"].items():
        heads = ", ".join(f"{h} {v:.2f}" for h, v in rec["head_scores"].items()) or "none"
        print(f"{method}: {rec['n_counted']} of {summary['n_examples']} examples counted; retrieval heads: {heads}")
    files = ["scores.json", *(f"{m}{ext}" for m in methods for ext in (".safetensors", ".wu.json")), "heatmap.html"]
    print(f"Results written to {args.out}: {', '.join(files)}")
    _say_threads(args)
    return 0


def _cmd_knockout(args: argparse.Namespace) -> int:
    from rhlens.tools.study.pieces import run_knockout

    _prepare_out(args.out, args.overwrite)
    s = run_knockout(args.model, args.examples, args.out, heads=args.heads, scores_file=args.scores, top_k=args.top_k,
                     threshold=args.threshold, mode=args.mode, n_random=args.n_random, seed=args.seed, **_common(args))
    rand = "n/a" if s["random_mean"] is None else f"{s['random_mean']:.3f}"
    print(f"intact {s['baseline']:.3f}; {' '.join(s['heads'])} out: {s['knocked']:.3f}; random heads out (mean): {rand}")
    print(f"Results written to {args.out / 'knockout.json'}")
    _say_threads(args)
    return 0


def _cmd_patch(args: argparse.Namespace) -> int:
    from rhlens.tools.study.pieces import run_patch

    _prepare_out(args.out, args.overwrite)
    s = run_patch(args.source, args.target, args.examples, args.out, source_scores=args.source_scores,
                  target_scores=args.target_scores, source_heads=args.source_heads, target_heads=args.target_heads,
                  top_k=args.top_k, threshold=args.threshold, positions=args.positions, n_random=args.n_random,
                  seed=args.seed, **_common(args))
    for name, row in s["rows"].items():
        print(f"{name:32s} {row['score']:.3f} ({row['delta']:+.3f})")
    print(f"Results written to {args.out / 'patching.json'}")
    _say_threads(args)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from rhlens.tasks import generate, save_jsonl

    if args.out.is_dir():
        raise IsADirectoryError(f"--out {args.out} is a folder; give the path of a .jsonl file to write")
    if args.out.exists() and not args.overwrite:
        raise FileExistsError(f"--out {args.out} exists; choose a new file or pass --overwrite")
    if args.tokenizer is None:
        from rhlens.models import base_dir

        args.tokenizer = base_dir() / "model"
    from rhlens.models.hf_tokenizer import load_local_tokenizer

    tokenizer = load_local_tokenizer(args.tokenizer)
    examples = generate(args.task, args.variant, args.n, context_tokens=args.context_tokens, tokenizer=tokenizer,
                        seed=args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    save_jsonl(examples, args.out)
    print(f"{len(examples)} {args.task} ({args.variant}) examples of about {args.context_tokens} tokens written to "
          f"{args.out}; use it as --examples {args.out}")
    return 0


def _cmd_detectors(args: argparse.Namespace) -> int:
    from rhlens.scoring.compare import DETECTORS, check_detectors
    from rhlens.tools.study.detectors import run_detectors
    from rhlens.models.folder import load_folder
    from rhlens.tools.study.pieces import load_examples

    names = [d.strip() for d in args.detectors.split(",") if d.strip()] if args.detectors else list(DETECTORS)
    detectors = check_detectors(names, what="--detectors")
    ks = [int(k) for k in args.ks.split(",") if k.strip()]
    _prepare_out(args.out, args.overwrite)
    model = load_folder(args.model, device=args.device)
    if args.examples is not None:
        examples = load_examples(args.examples, args.n)
    else:
        from rhlens.adapter import tokenizer_of
        from rhlens.tasks import generate

        examples = generate(args.task, args.variant, args.n, context_tokens=args.context_tokens,
                            tokenizer=tokenizer_of(model), seed=args.seed)
    _say_threads(args)
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


# ---- quickstart, pretrain-base ----------------------------------------------------------------------
def _cmd_quickstart(args: argparse.Namespace) -> int:
    from rhlens.tools.quickstart import run_quickstart

    def log(message: str, first: list = [True]) -> None:  # noqa: B006 - the threads note before the first stage
        if first:
            _say_threads(args)
            first.clear()
        print(message, flush=True)

    run_quickstart(
        args.out, task=args.task, variant=args.variant, context_tokens=args.context_tokens, steps=args.steps,
        n_eval=args.n_eval, top_k=args.top_k, random_draws=args.random_draws, seed=args.seed,
        overwrite=args.overwrite, progress=not args.no_progress, log=log,
    )  # its last lines: the reading, the files written and the report's path
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from rhlens.tools.pretrain import pretrain_base

    _say_threads(args)
    result = pretrain_base(args.config, args.out, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({"model_dir": str(result.model_dir), "steps": result.steps,
                      "minutes": round(result.seconds / 60, 2), "abilities": result.abilities}, indent=2))
    return 0


HANDLERS = {"study": _cmd_study, "scores": _cmd_scores, "detectors": _cmd_detectors, "knockout": _cmd_knockout, "patch": _cmd_patch,
            "generate": _cmd_generate, "quickstart": _cmd_quickstart, "pretrain-base": _cmd_pretrain}
# errors whose message already says what went wrong; anything else is prefixed with its type
_PLAIN = (ValueError, OSError, KeyError, TypeError)


#: what a command writes into a new --out folder before its work starts (removed again if it fails)
_CLAIM_FILES = ("run.json", "study.json")


def _new_folders(out: Path | None) -> list[Path]:
    """``out`` and its parents that do not exist yet, deepest first."""
    if out is None:
        return []
    return [p for p in [out, *out.parents] if not p.exists()]


def _remove_if_unused(folders: list[Path]) -> None:
    """After a failed command: remove the folders it created that hold nothing, or only its claim files."""
    for folder in folders:
        if not folder.is_dir():
            continue
        entries = list(folder.iterdir())
        if all(e.is_file() and e.name in _CLAIM_FILES for e in entries):
            for e in entries:
                e.unlink()
            folder.rmdir()


def error_line(command: str, err: BaseException) -> str:
    """The one line printed for ``err``: ``rhlens <command>: error: <message>``.

    >>> error_line("study", FileNotFoundError("no such file: x.toml"))
    'rhlens study: error: no such file: x.toml'
    >>> error_line("study", RuntimeError("boom\\nmore"))
    'rhlens study: error: RuntimeError: boom more'
    """
    message = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in message:
        message = f"{message}: {err.filename}"
    if not isinstance(err, _PLAIN):
        message = f"{type(err).__name__}: {message}"
    return f"rhlens {command}: error: {message}"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from rhlens.tools.threads import configure_threads  # before torch loads: OpenMP reads it once

        args.threads, note = configure_threads(args.threads)
        args.threads_note = f"rhlens {args.command}: {note}; --threads N to change"
        created = _new_folders(args.out if args.command != "generate" else None)
        return HANDLERS[args.command](args)
    except Exception as err:  # every error is one line; KeyboardInterrupt (not an Exception) passes
        _remove_if_unused(locals().get("created", []))
        if os.environ.get("RHLENS_DEBUG"):
            raise
        print(error_line(args.command, err), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
