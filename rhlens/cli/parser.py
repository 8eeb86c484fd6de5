"""The ``rhlens`` command line's arguments: every subcommand's options, their choices derived from
the library's lists (tasks from :mod:`rhlens.tasks.registry`, knockout modes and patch positions
from :mod:`rhlens.interventions.options`; all torch-free, so ``rhlens --help`` is fast).

>>> args = build_parser().parse_args(["knockout", "--model", "m", "--examples", "e.jsonl", "--out", "o"])
>>> args.mode, args.n_random
('zero', 3)
"""

import argparse
from pathlib import Path

ALL_TASKS = "all"
BOTH_METHODS = "both"
GENERATE_HINT = "`rhlens generate mdqa realistic --n 40 --context-tokens 256 --out examples.jsonl`"


def task_choices() -> tuple[str, ...]:
    """``rhlens study --task`` choices: the tasks a study may fine-tune on (registered with a
    real-data loader, :func:`rhlens.tasks.studied_tasks`), and ``"all"``."""
    import rhlens.tasks  # torch-free; registers the built-in tasks

    return (*rhlens.tasks.studied_tasks(), ALL_TASKS)


def _add_progress(p: argparse.ArgumentParser) -> None:
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _add_model_opts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--examples", type=Path, required=True,
                   help=f"JSONL file of rhlens.Example records; make one with {GENERATE_HINT}")
    p.add_argument("--out", type=Path, required=True, help="results folder (new or empty, or --overwrite)")
    p.add_argument("--n", type=int, default=None, help="use only the first N examples")
    p.add_argument("--max-new-tokens", type=int, default=32, help="greedy decoding budget")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threshold", type=float, default=0.1, help="retrieval heads score above this (Wu et al.: 0.1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"),
                   help="weights' dtype for a Hugging Face checkpoint")
    p.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    _add_progress(p)


def _add_detectors(sub: "argparse._SubParsersAction") -> None:
    from rhlens.tasks import task_names  # torch-free
    d = sub.add_parser("detectors", help="head detectors side by side: agreement and knockout curves; JSON and a page")
    d.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--task", choices=task_names(), help="generate examples of this task")
    src.add_argument("--examples", type=Path, help=f"JSONL file of rhlens.Example records ({GENERATE_HINT})")
    d.add_argument("--variant", default="realistic", help="with --task: the variant")
    d.add_argument("--context-tokens", type=int, default=256, help="with --task: prompt length in tokens")
    d.add_argument("--n", type=int, default=24, help="examples (with --examples: the first N)")
    d.add_argument("--detectors", default=None,
                   help="comma-separated detectors to compare (default: all: decode, forced, attention_mass, query_focus, attribution)")
    d.add_argument("--ks", default="1,2,3,5,8", help="heads knocked out per detector, comma-separated")
    d.add_argument("--n-random", type=int, default=3, help="random head sets per k (outside every detector's top k)")
    d.add_argument("--n-boot", type=int, default=200, help="bootstrap draws over examples for the intervals")
    d.add_argument("--max-new-tokens", type=int, default=32, help="Wu's decoding budget (decode)")
    d.add_argument("--batch-size", type=int, default=8)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu")
    d.add_argument("--out", type=Path, required=True, help="results folder (new or empty, or --overwrite)")
    d.add_argument("--overwrite", action="store_true", help="write into a non-empty --out")
    _add_progress(d)


def _add_study(sub: "argparse._SubParsersAction") -> None:
    s = sub.add_parser("study", help="the paper's whole pipeline: fine-tunes, scores, compare, knockout, patching, report")
    src = s.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=("tiny", "smoke", "paper"), default=None,
                     help="a shipped config (default tiny: the embedded base, ~15 min on a laptop CPU)")
    src.add_argument("--config", type=Path, default=None, help="your study TOML (keys as in rhlens/recipes/study_tiny.toml)")
    s.add_argument("--task", choices=task_choices(), default=None, help="study only this task (all: every one)")
    s.add_argument("--base", default=None, help="base model folder (rhlens or Hugging Face) instead of the config's")
    s.add_argument("--out", type=Path, required=True, help="run folder (a rerun with the same config resumes)")
    s.add_argument("--dry-run", action="store_true", help="check paths, print the plan and a cost estimate; load no weights")
    s.add_argument("--overwrite", action="store_true", help="replace a study of another config in --out")
    _add_progress(s)


def _add_pieces(sub: "argparse._SubParsersAction") -> None:
    """``rhlens scores``, ``knockout`` and ``patch``: the study's pieces on the user's folders."""
    from rhlens.interventions.options import KNOCKOUT_MODES, PATCH_POSITIONS  # torch-free lists

    sc = sub.add_parser("scores", help="retrieval scores of every head of your model (JSON, Wu et al.'s JSON, heatmap)")
    sc.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    sc.add_argument("--method", default="decode",
                    help="decode: Wu et al.'s score while the model answers; forced: the answer teacher-forced "
                         "(a method of rhlens.retrieval_scores); both")
    sc.add_argument("--rouge-gate", type=_gate, default=0.5, metavar="R|none",
                    help="count an example only when the answer's ROUGE-1 recall exceeds R (Wu et al.: 0.5); "
                         "none counts every example")
    _add_model_opts(sc)

    ko = sub.add_parser("knockout", help="knock out retrieval heads and as many random heads; JSON")
    ko.add_argument("--model", required=True, help="rhlens.save_model folder or Hugging Face checkpoint folder")
    ko.add_argument("--heads", default=None, help="heads to knock out, e.g. L0H1,L1H3")
    ko.add_argument("--scores", default=None, help="head scores (.safetensors from rhlens scores, or Wu's .json): knock out the retrieval heads")
    ko.add_argument("--top-k", type=int, default=10, help="at most this many retrieval heads from --scores")
    ko.add_argument("--mode", choices=KNOCKOUT_MODES, default="zero",
                    help="how a head is knocked out: zero (its output set to 0), mean (its mean output over the "
                         "examples' prompts), uniform (it attends evenly to every earlier token: Wu et al.'s masking)")
    ko.add_argument("--n-random", type=int, default=3, help="random head sets drawn")
    ko.add_argument("--seed", type=int, default=0)
    _add_model_opts(ko)

    pa = sub.add_parser("patch", help="patch a source model's heads into a target model (the paper's table); JSON")
    pa.add_argument("--source", required=True, help="source model folder (e.g. the real-data fine-tune)")
    pa.add_argument("--target", required=True, help="target model folder (e.g. a synthetic-data fine-tune)")
    pa.add_argument("--source-scores", default=None, help="the source's head scores file")
    pa.add_argument("--target-scores", default=None, help="the target's head scores file")
    pa.add_argument("--source-heads", default=None, help="instead of --source-scores: heads, e.g. L0H1,L1H3")
    pa.add_argument("--target-heads", default=None, help="instead of --target-scores: heads")
    pa.add_argument("--top-k", type=int, default=10)
    pa.add_argument("--positions", choices=PATCH_POSITIONS, default="all",
                    help="where the source's head outputs replace the target's: all (every position), prompt (the "
                         "prompt's tokens), answer (the last prompt token and every answer token), needle (the "
                         "needle's tokens)")
    pa.add_argument("--n-random", type=int, default=2)
    pa.add_argument("--seed", type=int, default=0)
    _add_model_opts(pa)


def _add_runs(sub: "argparse._SubParsersAction") -> None:
    """``rhlens quickstart``, ``generate`` and ``pretrain-base``."""
    from rhlens.tasks import VARIANTS, task_names  # torch-free

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


def build_parser() -> argparse.ArgumentParser:
    """The ``rhlens`` argument parser (every subcommand)."""
    parser = argparse.ArgumentParser(prog="rhlens", description="Retrieval heads for synthetic long-context fine-tuning.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_study(sub)
    _add_pieces(sub)
    _add_detectors(sub)
    _add_runs(sub)
    for command in sub.choices.values():
        command.formatter_class = argparse.ArgumentDefaultsHelpFormatter  # help shows every default
        command.add_argument("--threads", type=int, default=None, metavar="N",
                             help="CPU threads (default: the cores other processes leave free, at least 1)")
    return parser


def _gate(text: str) -> float | None:
    """``--rouge-gate``: a number, or ``none`` (count every example)."""
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a number nor none") from None
