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

from rhlens.tools.arguments import at_least, fraction, rouge_gate

ALL_TASKS = "all"
BOTH_METHODS = "both"
GENERATE_HINT = "`rhlens generate mdqa realistic --n 40 --context-tokens 256 --out examples.jsonl`"


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", type=Path, required=True,
                   help=f"JSONL file of rhlens.Example records; make one with {GENERATE_HINT}")
    p.add_argument("--out", type=Path, required=True, help="results folder (new or empty, or --overwrite)")
    p.add_argument("--n", type=at_least(1), default=None, help="use only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=32, help="greedy decoding budget")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threshold", type=fraction, default=0.1, help="retrieval heads score above this (Wu et al.: 0.1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weights' dtype for a Hugging Face checkpoint")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    _add_progress(p)


def _add_detectors(sub: "argparse._SubParsersAction") -> None:
    from rhlens.tools.study.detectors import add_detectors_arguments

    add_detectors_arguments(sub.add_parser("detectors", help="head detectors side by side: agreement and knockout "
                                           "curves; JSON and a page"), GENERATE_HINT)
    _add_progress(sub.choices["detectors"])


def _add_patch(sub: "argparse._SubParsersAction") -> None:
    from rhlens.interventions.options import PATCH_POSITIONS  # torch-free

    pa = sub.add_parser("patch", help="patch a source model's heads into a target model (the paper's table); JSON")
    pa.add_argument("--source", required=True, help="source model folder (e.g. the real-data fine-tune)")
    pa.add_argument("--target", required=True, help="target model folder (e.g. a synthetic-data fine-tune)")
    pa.add_argument("--source-scores", default=None, help="the source's head scores file")
    pa.add_argument("--target-scores", default=None, help="the target's head scores file")
    pa.add_argument("--source-heads", default=None, help="instead of --source-scores: heads, e.g. L0H1,L1H3")
    pa.add_argument("--target-heads", default=None, help="instead of --target-scores: heads")
    pa.add_argument("--top-k", type=at_least(1), default=10)
    pa.add_argument("--positions", choices=PATCH_POSITIONS, default="all",
                    help="where the source's head outputs replace the target's: all (every position), prompt (the "
                         "prompt's tokens), answer (the last prompt token and every answer token), needle (the "
                         "needle's tokens)")
    pa.add_argument("--n-random", type=at_least(0), default=2)
    pa.add_argument("--seed", type=int, default=0)
    _add_model_opts(pa)


def build_parser() -> argparse.ArgumentParser:
    from rhlens.interventions.options import KNOCKOUT_MODES  # torch-free
    from rhlens.tasks import VARIANTS, studied_tasks, task_names

    parser = argparse.ArgumentParser(prog="rhlens", description="Retrieval heads for synthetic long-context fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True)

    s = sub.add_parser("study", help="the paper's whole pipeline: fine-tunes, scores, compare, knockout, patching, report")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=("tiny", "smoke", "paper"), default=None,
                     help="a shipped config (default tiny: the embedded base, ~15 min on a laptop CPU)")
    src.add_argument("--config", type=Path, default=None, help="your study TOML (keys as in rhlens/recipes/study_tiny.toml)")
    s.add_argument("--task", choices=(*studied_tasks(), ALL_TASKS), default=None, help="study only this task (all: each)")
    s.add_argument("--base", default=None, help="base model folder (rhlens or Hugging Face) instead of the config's")
    s.add_argument("--out", type=Path, required=True, help="run folder (a rerun with the same config resumes)")
    s.add_argument("--dry-run", action="store_true", help="check paths, print the plan and a cost estimate; load no weights")
    s.add_argument("--overwrite", action="store_true", help="replace a study of another config in --out")
    _add_progress(s)

    sc = sub.add_parser("scores", help="retrieval scores of every head of your model (JSON, Wu et al.'s JSON, heatmap)")
    sc.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    sc.add_argument("--method", default="decode", help="decode: Wu et al.'s score while the model answers; forced: "
                    "the answer teacher-forced (rhlens.retrieval_scores' methods); both")
    sc.add_argument("--rouge-gate", type=rouge_gate, default=0.5, metavar="R|none",
                    help="count an example only when the answer's ROUGE-1 recall exceeds R (Wu et al.: 0.5); "
                         "none counts every example")
    _add_model_opts(sc)

    ko = sub.add_parser("knockout", help="knock out retrieval heads and as many random heads; JSON")
    ko.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    ko.add_argument("--heads", default=None, help="heads to knock out, e.g. L0H1,L1H3")
    ko.add_argument("--scores", default=None, help="head scores (.safetensors from rhlens scores, or Wu's .json): knock out the retrieval heads")
    ko.add_argument("--top-k", type=at_least(1), default=10, help="at most this many retrieval heads from --scores")
    ko.add_argument("--mode", choices=KNOCKOUT_MODES, default="zero",
                    help="how a head is knocked out: zero (its output set to 0), mean (its mean output over the "
                         "examples' prompts), uniform (it attends evenly to every earlier token: Wu et al.'s masking)")
    ko.add_argument("--n-random", type=at_least(0), default=3, help="random head sets drawn")
    ko.add_argument("--seed", type=int, default=0)
    _add_model_opts(ko)

    _add_patch(sub)
    _add_detectors(sub)
    q = sub.add_parser("quickstart", help="fine-tune the embedded base briefly, then score and knock out retrieval heads")
    q.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="results folder")
    q.add_argument("--task", default="mdqa", help="task to fine-tune and evaluate on (default mdqa: multi-document QA)")
    q.add_argument("--variant", default="realistic", help="task variant (default realistic)")
    q.add_argument("--context-tokens", type=int, default=256,
                   help="prompt length (default 256: twice the base's training context, as the paper extends a model)")
    q.add_argument("--steps", type=int, default=150, help="fine-tuning steps")
    q.add_argument("--n-eval", type=int, default=40, help="evaluation / scoring examples")
    q.add_argument("--top-k", type=int, default=None, help="heads to knock out (default: every head over 0.1)")
    q.add_argument("--random-draws", type=int, default=5, help="random head sets knocked out as the control")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart run in --out")
    _add_progress(q)

    g = sub.add_parser("generate", help="write synthetic examples to a JSONL file (what --examples reads)")
    g.add_argument("task", help=", ".join(task_names()))
    g.add_argument("variant", help=", ".join(VARIANTS))
    g.add_argument("--n", type=int, default=40, help="number of examples")
    g.add_argument("--context-tokens", type=int, default=256, help="prompt length in tokens (within 5%%)")
    g.add_argument("--tokenizer", type=Path, default=None, metavar="MODEL_DIR",
                   help="count tokens with this model folder's tokenizer (default: the embedded base's)")
    g.add_argument("--seed", type=int, default=0, help="examples are a deterministic function of the seed")
    g.add_argument("--out", type=Path, required=True, help="the JSONL file to write (new, or --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out file")

    p = sub.add_parser("pretrain-base", help="train the embedded base model from a recipe")
    p.add_argument("--config", type=Path, default=None, help="recipe TOML (default: rhlens/recipes/base.toml)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_progress(p)
    for command in sub.choices.values():
        command.formatter_class = argparse.ArgumentDefaultsHelpFormatter  # help shows every default
        command.add_argument("--threads", type=int, default=None, metavar="N",
                             help="CPU threads (default: the cores other processes leave free, at least 1)")
    return parser


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
    from rhlens.tools.study.detectors import detectors_command

    for line in detectors_command(args, check_out=lambda: _prepare_out(args.out, args.overwrite),
                                  before_run=lambda: _say_threads(args)):
        print(line)
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
