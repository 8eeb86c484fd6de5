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
import functools
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from rhlens.cli.common import GENERATE_HINT, DefaultsHelpFormatter
from rhlens.cli.common import add_progress as _add_progress
from rhlens.cli.common import prepare_out as _prepare_out
from rhlens.dtypes import DTYPE_NAMES
from rhlens.cli.common import say_threads as _say_threads
from rhlens.tools.arguments import at_least, fraction, fraction_or_none


def _add_model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", type=Path, required=True,
                   help=f"JSONL file of rhlens.Example records; make one with {GENERATE_HINT}")
    p.add_argument("--out", type=Path, required=True, help="results folder (new or empty, or --overwrite)")
    p.add_argument("--n", type=at_least(1), default=None, help="use only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=32, help="greedy decoding budget")
    p.add_argument("--batch-size", type=int, default=8, help="examples per forward pass")
    p.add_argument("--threshold", type=fraction, default=0.1, help="retrieval heads score above this (Wu et al.: 0.1)")
    p.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:0 ...")
    p.add_argument("--dtype", default="float32", choices=DTYPE_NAMES,
                   help="weights' dtype for a Hugging Face checkpoint")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    _add_progress(p)


def _add_generate(sub: "argparse._SubParsersAction") -> None:
    g = sub.add_parser("generate", help="write synthetic examples to a JSONL file (what --examples reads)")
    from rhlens.tasks import VARIANTS, task_names  # torch-free

    g.add_argument("task", help=", ".join(task_names()))
    g.add_argument("variant", help=", ".join(VARIANTS))
    g.add_argument("--n", type=int, default=40, help="number of examples")
    g.add_argument("--context-tokens", type=int, default=256, help="prompt length in tokens (within 5%%)")
    g.add_argument("--tokenizer", type=Path, default=None, metavar="MODEL_DIR",
                   help="count tokens with this model folder's tokenizer (default: the embedded base's)")
    g.add_argument("--seed", type=int, default=0, help="examples are a deterministic function of the seed")
    g.add_argument("--out", type=Path, required=True, help="the JSONL file to write (new, or --overwrite)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out file")


def _add_detectors(sub: "argparse._SubParsersAction") -> None:
    from rhlens.tools.study.detectors import add_detectors_arguments

    add_detectors_arguments(sub.add_parser("detectors", help="head detectors side by side: agreement and knockout "
                                           "curves; JSON and a page"), GENERATE_HINT)
    _add_progress(sub.choices["detectors"])


def build_parser() -> argparse.ArgumentParser:
    from rhlens.interventions.options import KNOCKOUT_MODES, PATCH_POSITIONS  # torch-free
    parser = argparse.ArgumentParser(prog="rhlens", description="Retrieval heads for synthetic long-context fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=functools.partial(
        argparse.ArgumentParser, formatter_class=DefaultsHelpFormatter))  # help shows defaults

    from rhlens.tools.study.command import add_study_parser  # noqa: I001  (loads no torch)
    add_study_parser(sub, _add_progress)

    sc = sub.add_parser("scores", help="retrieval scores of every head of your model (JSON, Wu et al.'s JSON, heatmap)")
    sc.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    sc.add_argument("--method", default="decode",
                    help="decode: Wu et al.'s score while the model answers; forced: the answer teacher-forced "
                         "(rhlens.retrieval_scores' methods); both")
    sc.add_argument("--rouge-gate", type=fraction_or_none, default=0.5, metavar="R|none",
                    help="count an example only when the answer's ROUGE-1 recall exceeds R (Wu et al.: 0.5); "
                         "none counts every example")
    sc.add_argument("--gate", default="rouge", help="what the gate measures: rouge (answer recall, Wu et al.) or exact "
                    "(SQuAD exact match; rhlens.retrieval_scores' gates)")
    sc.add_argument("--rule", default="rhlens", help="rhlens (the documented rule) or wu-literal (Wu et al.'s code to "
                    "the letter: stop only at a line feed, their needle window, rouge_score's stemmed gate; decode "
                    "only; rhlens.retrieval_scores' rules)")
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
    ko.add_argument("--seed", type=int, default=0, help="seed of the random head sets (draw i uses seed + i)")
    _add_model_opts(ko)

    pa = sub.add_parser("patch", help="patch a source model's heads into a target model (the paper's table); JSON")
    pa.add_argument("--source", required=True, help="source model folder (e.g. the real-data fine-tune)")
    pa.add_argument("--target", required=True, help="target model folder (e.g. a synthetic-data fine-tune)")
    pa.add_argument("--source-scores", default=None, help="the source's head scores file")
    pa.add_argument("--target-scores", default=None, help="the target's head scores file")
    pa.add_argument("--source-heads", default=None, help="instead of --source-scores: heads, e.g. L0H1,L1H3")
    pa.add_argument("--target-heads", default=None, help="instead of --target-scores: heads")
    pa.add_argument("--top-k", type=at_least(1), default=10, help="at most this many retrieval heads per model from the scores files")
    pa.add_argument("--positions", choices=PATCH_POSITIONS, default="all",
                    help="where the source's head outputs replace the target's: all (every position), prompt (the "
                         "prompt's tokens), answer (the last prompt token and every answer token), needle (the "
                         "needle's tokens)")
    pa.add_argument("--n-random", type=at_least(0), default=2, help="random head sets drawn per random row")
    pa.add_argument("--seed", type=int, default=0, help="seed of the random head sets (draw i uses seed + i)")
    _add_model_opts(pa)

    _add_detectors(sub)
    q = sub.add_parser("quickstart", help="fine-tune the embedded base briefly, then score and knock out retrieval heads")
    q.add_argument("--out", type=Path, default=Path("runs/quickstart"), help="results folder")
    q.add_argument("--task", default="mdqa", help="task to fine-tune and evaluate on (mdqa: multi-document QA)")
    q.add_argument("--variant", default="realistic", help="task variant")
    q.add_argument("--context-tokens", type=int, default=256,
                   help="prompt length (256: twice the base's training context, as the paper extends a model)")
    q.add_argument("--steps", type=int, default=150, help="fine-tuning steps")
    q.add_argument("--batch-size", type=int, default=8, help="fine-tuning examples per step")
    q.add_argument("--n-eval", type=int, default=40, help="evaluation / scoring examples")
    q.add_argument("--top-k", type=int, default=None, help="heads to knock out (default: every head over 0.1)")
    q.add_argument("--random-draws", type=int, default=5, help="random head sets knocked out as the control")
    q.add_argument("--seed", type=int, default=0, help="seed of the examples, the fine-tune and the random head sets")
    q.add_argument("--overwrite", action="store_true", help="replace an earlier quickstart run in --out")
    _add_progress(q)

    _add_generate(sub)
    p = sub.add_parser("pretrain-base", help="train the embedded base model from a recipe")
    p.add_argument("--config", type=Path, default=None, help="recipe TOML (default: rhlens/recipes/base.toml)")
    p.add_argument("--out", type=Path, required=True, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    _add_progress(p)
    return parser


# ---- study ----------------------------------------------------------------------------------------
def _cmd_study(args: argparse.Namespace) -> int:
    from rhlens.tools.study import Study
    from rhlens.tools.study.command import print_dry_run, study_config

    study = Study(study_config(args), args.out, overwrite=args.overwrite, progress=not args.no_progress,
                  threads=args.threads)
    if args.dry_run:
        return print_dry_run(study)
    study.check()
    _say_threads(args)
    results = study.run()
    print(f"Results written to {args.out}: results.json, report.md, report.html")
    for task, entry in results["tasks"].items():
        for f in entry["findings"]:
            print(f"{task} | {f['title']}: {f['verdict']}. {f['text']}")
    return 0


# ---- pieces ---------------------------------------------------------------------------------------
def _common(args: argparse.Namespace) -> dict:
    return dict(n=args.n, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, device=args.device,
                dtype=args.dtype, progress=not args.no_progress)


def _cmd_scores(args: argparse.Namespace) -> int:
    from rhlens.tools.study.pieces import run_scores
    from rhlens.tools.study.sections import score_methods

    from rhlens.scoring.answer_spans import check_rule
    from rhlens.scoring.rouge_gate import check_gate

    known = score_methods()  # rhlens.retrieval_scores' methods
    if args.method != "both" and args.method not in known:
        raise ValueError(f"--method {args.method!r}: use one of {', '.join(known)} or both")
    methods = known if args.method == "both" else (args.method,)
    check_gate(args.gate)
    for method in methods:  # before any file is touched
        check_rule(args.rule, method, args.gate)
    _prepare_out(args.out, args.overwrite)
    summary = run_scores(args.model, args.examples, args.out, methods=methods, threshold=args.threshold,
                         rouge_gate=args.rouge_gate, gate=args.gate, rule=args.rule, **_common(args))
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
    from rhlens.tools.examples_file import write_examples

    n = write_examples(args.task, args.variant, args.out, n=args.n, context_tokens=args.context_tokens,
                       tokenizer_dir=args.tokenizer, seed=args.seed, overwrite=args.overwrite)
    print(f"{n} {args.task} ({args.variant}) examples of about {args.context_tokens} tokens written to {args.out}; "
          f"use it as --examples {args.out}")
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
        args.out, task=args.task, variant=args.variant, context_tokens=args.context_tokens, steps=args.steps, batch_size=args.batch_size,
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
        # threads before torch loads: OpenMP reads its variables once
        from rhlens.tools.allocator import keep_freed_memory
        from rhlens.tools.outdir import new_folders, remove_if_unused
        from rhlens.tools.threads import configure_threads

        keep_freed_memory()  # large tensors reuse freed memory instead of page-faulting (2x on a Bridge)
        args.threads, note = configure_threads(getattr(args, "threads", None))
        args.threads_note = f"rhlens {args.command}: {note}; --threads N to change"
        created = new_folders(getattr(args, "out", None) if args.command != "generate" else None)
        return HANDLERS[args.command](args)
    except Exception as err:  # every error is one line; KeyboardInterrupt (not an Exception) passes
        remove_if_unused(locals().get("created", []))  # a failed command leaves no empty --out folder
        if os.environ.get("RHLENS_DEBUG"):
            raise
        print(error_line(args.command, err), file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
