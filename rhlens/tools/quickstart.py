"""The smallest end-to-end study: fine-tune the embedded base, score and knock out its heads.

:func:`run_quickstart` is what ``rhlens quickstart`` runs:

1. check the output folder (before any work: writable, not a file, not another run's folder);
2. load the shipped base model (:func:`rhlens.models.load_base`);
3. fine-tune it with :func:`rhlens.train` on a synthetic task;
4. evaluate it on fresh examples (:func:`rhlens.evaluate`);
5. score every head's retrieval ability (:func:`rhlens.retrieval_scores`, Wu et al.'s decode
   method);
6. knock out every head scoring over 0.1 (Wu et al.'s retrieval heads), and, as the control, as
   many random heads drawn from the rest, several times (:func:`rhlens.knockout_effect`);
7. say in one sentence what the knockouts show.

Everything lands in the output folder: ``report.html`` (figures; opens offline in a browser),
``summary.json``, the fine-tuned model (``model/``, a :func:`rhlens.save_model` folder), the head
scores (``retrieval_scores.safetensors`` and Wu et al.'s JSON format, ``retrieval_scores_wu.json``)
and ``run.json``, the run's identity (its settings), which lets a later run recognise the folder.

>>> reading_of_knockouts(baseline=0.9, retrieval=0.2, random=[0.85, 0.9, 0.88], n_heads=3)
'Knocking out the 3 retrieval heads drops the score from 0.90 to 0.20, while as many random heads leave 0.88 on average: these heads are how the model finds the answer.'
"""

import hashlib
import json
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rhlens.files import write_json_atomic
from rhlens.heads import RETRIEVAL_THRESHOLD
from rhlens.tools.study.folder import check_writable, refuse_file_path

RUN_FILE = "run.json"
_RUN_KIND = "rhlens.tools.quickstart/1"
#: what a quickstart run writes; an ``overwrite`` removes these from an earlier quickstart run's folder
#: (a folder without a quickstart ``run.json`` that holds any of them is refused: they are someone else's)
OUTPUTS = ("report.html", "summary.json", "model", "retrieval_scores.safetensors", "retrieval_scores_wu.json", RUN_FILE)


class OutputFolderError(ValueError):
    """The output folder cannot take this run: the message names the folder, the problem and the fix."""


def _identity(settings: dict[str, Any]) -> dict[str, Any]:
    from rhlens.version import __version__

    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]
    return {"kind": _RUN_KIND, "settings": settings, "settings_digest": digest, "rhlens_version": __version__}


def prepare_out_dir(out_dir: "str | os.PathLike", identity: dict[str, Any], *, overwrite: bool = False) -> Path:
    """Check and claim ``out_dir`` for a run before any work is done, then record ``identity`` in it.

    Accepted: a new folder, an empty one, or one holding a run with the same identity (a rerun
    of the same settings, e.g. after an interruption). Refused (:class:`OutputFolderError`): a path
    that is a file or lies under a file, a folder that cannot be written, and a folder holding
    anything else (another run, or unrelated files), unless ``overwrite=True`` (then the earlier
    quickstart run's outputs are removed and unrelated files are kept; files named like a
    quickstart output in a folder that holds no quickstart run are refused, never removed).

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> prepare_out_dir(root / "run", {"kind": "demo", "settings_digest": "a"}).name
    'run'
    >>> prepare_out_dir(root / "run", {"kind": "demo", "settings_digest": "b"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    rhlens.tools.quickstart.OutputFolderError: ... holds another run (settings_digest a, this run's b); pass a new ...
    """
    out = Path(out_dir)
    try:
        refuse_file_path(out)
    except NotADirectoryError as err:
        raise OutputFolderError(str(err)) from None
    if out.is_dir():
        entries = sorted(p.name for p in out.iterdir())
        run_file = out / RUN_FILE
        if entries:
            previous: dict[str, Any] | None = None
            if run_file.is_file():
                try:
                    previous = json.loads(run_file.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    previous = None
            same = (previous is not None and previous.get("kind") == identity.get("kind")
                    and previous.get("settings_digest") == identity.get("settings_digest"))
            if not same and not overwrite:
                if previous is not None:
                    what = (f"holds another run (settings_digest {previous.get('settings_digest')}, "
                            f"this run's {identity.get('settings_digest')})")
                else:
                    shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
                    what = f"is not empty ({shown}) and holds no {RUN_FILE} of this kind of run"
                raise OutputFolderError(
                    f"--out {out} {what}; pass a new or empty folder, or overwrite=True "
                    "(--overwrite) to replace that run's results"
                )
            ours = previous is not None and previous.get("kind") == _RUN_KIND
            clash = [name for name in OUTPUTS if (out / name).exists() or (out / name).is_symlink()]
            if not same and overwrite and not ours and clash:
                raise OutputFolderError(
                    f"--out {out} holds no quickstart run, but its {', '.join(clash)} would be replaced; "
                    "--overwrite replaces only an earlier quickstart run's results: move those files, or pass a new folder"
                )
            if not same and overwrite:
                for name in OUTPUTS:
                    p = out / name
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    elif p.exists() or p.is_symlink():
                        p.unlink()
    try:
        check_writable(out)
    except OSError as err:
        raise OutputFolderError(f"--out {out} cannot be written: {err}") from None
    write_json_atomic(out / RUN_FILE, identity)
    return out


def reading_of_knockouts(*, baseline: float, retrieval: float, random: Sequence[float], n_heads: int,
                         n_total: int | None = None) -> str:
    """One plain-language sentence on a knockout of ``n_heads`` retrieval heads against as many
    random heads (``random``: the score after each random draw; ``n_total``: the model's heads).

    A drop counts when it is at least 0.1. The retrieval heads stand out when their drop is at
    least twice the random heads' mean drop and 0.1 larger; two drops within 0.1 of each other are
    "about equal".
    """
    heads = f"{n_heads} retrieval head{'s' if n_heads != 1 else ''}"
    if baseline < 0.2:
        return (f"The fine-tuned model scores only {baseline:.2f}, too low for a knockout to show much; "
                "fine-tune longer (more steps) and run again.")
    drop_top = baseline - retrieval
    if not random:
        if drop_top >= 0.1:
            return (f"Knocking out the {heads} drops the score from {baseline:.2f} to {retrieval:.2f}; "
                    "no other heads were left to draw a random control from.")
        return (f"Knocking out the {heads} leaves the score at {retrieval:.2f} (from {baseline:.2f}); "
                "no other heads were left to draw a random control from.")
    mean_random = sum(random) / len(random)
    drop_random = baseline - mean_random
    share = f" ({n_heads} of {n_total} heads)" if n_total else ""
    if drop_top >= 0.1 and drop_top >= 2 * max(drop_random, 0.0) and drop_top - drop_random >= 0.1:
        return (f"Knocking out the {heads}{share} drops the score from {baseline:.2f} to {retrieval:.2f}, while as "
                f"many random heads leave {mean_random:.2f} on average: these heads are how the model finds the answer.")
    if drop_top < 0.1 and drop_random < 0.1:
        return (f"Neither knockout changes the score much (from {baseline:.2f} to {retrieval:.2f} without the "
                f"{heads}, {mean_random:.2f} without random heads): other heads can take over the copying.")
    if abs(drop_top - drop_random) < 0.1:
        return (f"The {heads}{share} and as many random heads hurt about equally (score {retrieval:.2f} against "
                f"{mean_random:.2f} on average, from {baseline:.2f}): the random sets remove much of the same "
                "circuit, so this knockout cannot single the retrieval heads out.")
    if drop_random > drop_top:
        return (f"Random heads hurt more than the {heads} (score {mean_random:.2f} on average against "
                f"{retrieval:.2f}, from {baseline:.2f}): the copying depends on heads that do not score as "
                "retrieval heads.")
    return (f"Knocking out the {heads} costs more ({baseline:.2f} to {retrieval:.2f}) than as many random heads "
            f"({mean_random:.2f} on average), but the random heads matter too: the retrieval heads are a large "
            "part of the circuit, not all of it.")


def _check_args(*, top_k: Any, random_draws: Any, steps: Any, n_eval: Any, context_tokens: Any, batch_size: Any) -> None:
    """Refuse settings that cannot run, before any work (each message names the setting)."""
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(
            f"top_k={top_k!r} knocks out no head: pass a positive number of heads, or None to knock out "
            f"every head scoring over {RETRIEVAL_THRESHOLD}"
        )
    if isinstance(random_draws, bool) or not isinstance(random_draws, int) or random_draws < 1:
        raise ValueError(f"random_draws={random_draws!r} must be a positive int (the random control's draws)")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("n_eval", n_eval), ("context_tokens", context_tokens)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int")


class StageLog:
    """The quickstart's one-line stage headers: ``[2/7] evaluate ... (0:12 so far)``, through ``say``."""

    def __init__(self, say: Callable[[str], None], n_stages: int = 7) -> None:
        self.say, self.n_stages, self.i, self.t0 = say, n_stages, 0, time.monotonic()

    def stage(self, text: str) -> None:
        self.i += 1
        spent = int(time.monotonic() - self.t0)
        self.say(f"[{self.i}/{self.n_stages}] {text} ({spent // 60}:{spent % 60:02d} so far)")


def _fine_tune(model: Any, *, task: str, variant: str, context_tokens: int, steps: int, batch_size: int, n_eval: int,
               seed: int, progress: bool, log: StageLog) -> tuple[list, Any, Any, Any]:
    """Fine-tune ``model`` in place on generated data; returns the held-out examples, the score
    before, the training result and the score after."""
    from rhlens.evaluation import evaluate
    from rhlens.tasks import generate
    from rhlens.tools.study.report import metric_name
    from rhlens.training import TrainConfig, train

    log.stage(f"data: {steps * batch_size} training and {n_eval} held-out {task} ({variant}) examples at "
              f"{context_tokens} tokens")
    train_examples = generate(task, variant, steps * batch_size, context_tokens=context_tokens, seed=seed)
    eval_examples = generate(task, variant, n_eval, context_tokens=context_tokens, seed=seed + 10_000)

    log.stage(f"evaluate the embedded base on the {n_eval} held-out examples")
    before = evaluate(model, eval_examples, progress=progress)
    log.stage(f"fine-tune: {steps} steps of batch {batch_size} (the base scored {before.score:.2f}, "
              f"{metric_name(task, before.metric)})")
    result = train(
        model, train_examples,
        TrainConfig(steps=steps, batch_size=batch_size, lr=1e-3, warmup_steps=min(20, steps // 5), seed=seed, progress=progress),
    )
    log.stage(f"evaluate the fine-tuned model (final training loss {result.loss_curve[-1]:.3f})")
    after = evaluate(model, eval_examples, progress=progress)
    return eval_examples, before, result, after


def _knockouts(model: Any, eval_examples: list, knocked: Any, scores: Any, after: Any, *,
               random_draws: int, seed: int, progress: bool, log: StageLog) -> Any:
    """The knockout of ``knocked`` with ``random_draws`` random controls as large (the heads they
    avoid: :func:`rhlens.interventions.head_sets.control_exclusion`'s rule); ``None`` when nothing
    is knocked out."""
    from rhlens.interventions import knockout_effect
    from rhlens.interventions.head_sets import control_exclusion

    if not knocked:
        log.stage("knockout: skipped, no head scores over the threshold")
        log.stage("controls: skipped")
        return None
    log.stage(f"knockout: {', '.join(str(h) for h in knocked.ordered())} set to zero "
              f"(the model scores {after.score:.2f} intact)")
    excluded = control_exclusion(knocked, scores=scores, threshold=RETRIEVAL_THRESHOLD,
                                 n_total=scores.scores.numel(), what="the quickstart's controls")
    avoided = ("none over the threshold" if excluded != knocked
               else "none of the knocked heads (too few others are under the threshold)")
    log.stage(f"controls: {random_draws} draws of {len(knocked)} random heads, {avoided}")
    return knockout_effect(model, eval_examples, knocked, mode="zero", baseline=after, n_random=random_draws,
                           exclude=excluded, seed=seed, progress=progress)


def _head_scores(grid: Any, heads: Any) -> dict[str, float]:
    return {str(h): round(float(grid[h.layer, h.head]), 3) for h in sorted(heads, key=lambda h: (-float(grid[h.layer, h.head]), h))}


def _knockout_records(scores: Any, after: Any, knocked: Any, over: Any, top_effect: Any, *,
                      n_eval: int, n_total: int) -> tuple[str, Any, Any]:
    """The summary's ``reading`` and its ``knockout_top_heads`` / ``knockout_random_heads`` records."""
    if top_effect is None:
        reading = (f"No head scored over {RETRIEVAL_THRESHOLD} (the model counted {scores.n_counted} of {n_eval} "
                   f"examples as correct retrievals, score {after.score:.2f}), so there are no retrieval heads to "
                   "knock out; fine-tune longer (more steps) or on an easier task, and run again.")
        ko_top = ko_random = None
    else:
        draws = [c.score for c in top_effect.controls]
        reading = reading_of_knockouts(baseline=after.score, retrieval=top_effect.knocked.score, random=draws,
                                       n_heads=len(knocked), n_total=n_total)
        if len(knocked) < len(over):
            reading = f"Only the best {len(knocked)} of the {len(over)} heads over {RETRIEVAL_THRESHOLD} were knocked out (top_k). " + reading
        ko_top = {"heads": [str(h) for h in knocked.ordered()], "score": round(top_effect.knocked.score, 3),
                  "delta": round(top_effect.delta, 3), "mode": top_effect.mode,
                  "scope": getattr(top_effect, "scope", "all")}
        ko_random = {
            "draws": [{"heads": [str(h) for h in heads.ordered()], "score": round(c.score, 3),
                       "delta": round(c.score - after.score, 3)}
                      for heads, c in zip(top_effect.control_heads, top_effect.controls, strict=True)],
            "excluded": top_effect.control_excluded.labels(),
            "mean_score": round(statistics.fmean(draws), 3) if draws else None,
            "mean_delta": round(statistics.fmean(draws) - after.score, 3) if draws else None,
            "std_score": round(statistics.stdev(draws), 3) if len(draws) > 1 else (0.0 if draws else None),
        }
    return reading, ko_top, ko_random


def run_quickstart(
    out_dir: "str | os.PathLike",
    *,
    task: str = "mdqa",
    variant: str = "realistic",
    context_tokens: int = 256,
    steps: int = 150,
    batch_size: int = 8,
    n_eval: int = 40,
    top_k: int | float | None = None,  # float: refused by _check_args with a clearer message
    random_draws: int = 5,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the quickstart study and return its summary (also written to ``summary.json``).

    Args:
        out_dir: results folder; checked before any work (see :func:`prepare_out_dir`).
        task, variant, context_tokens: the synthetic data (:func:`rhlens.generate`).
        steps, batch_size: fine-tuning steps and examples per step (150 of 8: the study's fine-tunes).
        n_eval: evaluation examples, also used for the head scores and the knockouts.
        top_k: knock out at most this many of the heads over 0.1 (the best ones); ``None``: all.
        random_draws: random head sets drawn for the control (each as large as the knocked set).
        seed: seeds the data, the training and the random draws.
        overwrite: replace an earlier, different run's results in ``out_dir``.
        progress: show progress bars.
        log: where the one-line stage headers go (default: printed, between the bars).

    When no head scores over 0.1 nothing is knocked out and the summary's ``reading`` says so.
    """
    _check_args(top_k=top_k, random_draws=random_draws, steps=steps, n_eval=n_eval, context_tokens=context_tokens,
                batch_size=batch_size)
    settings = dict(task=task, variant=variant, context_tokens=context_tokens, steps=steps, batch_size=batch_size, n_eval=n_eval,
                    top_k=top_k, random_draws=random_draws, seed=seed)
    out_dir = prepare_out_dir(out_dir, _identity(settings), overwrite=overwrite)

    from rhlens.heads import HeadSet
    from rhlens.models import load_base, save_model
    from rhlens.scoring import retrieval_scores
    from rhlens.tools.quickstart_report import report_intervals, write_report
    from rhlens.tools.study.report import metric_name

    stages = StageLog(log or _default_log(progress))
    model = load_base()
    eval_examples, before, result, after = _fine_tune(model, task=task, variant=variant, context_tokens=context_tokens,
                                                      steps=steps, batch_size=batch_size, n_eval=n_eval, seed=seed, progress=progress,
                                                      log=stages)
    stages.stage(f"retrieval scores of every head on the {n_eval} examples (Wu et al.'s decode method; the model "
                 f"scores {after.score:.2f})")
    scores = retrieval_scores(model, eval_examples, method="decode", progress=progress)
    grid = scores.scores
    over = scores.above(RETRIEVAL_THRESHOLD)
    ranked = sorted(over, key=lambda h: (-float(grid[h.layer, h.head]), h))
    knocked = HeadSet(ranked if top_k is None else ranked[: int(top_k)])
    n_total = grid.numel()

    top_effect = _knockouts(model, eval_examples, knocked, scores, after, random_draws=random_draws, seed=seed,
                            progress=progress, log=stages)

    save_model(model, out_dir / "model")
    scores.save(out_dir / "retrieval_scores.safetensors")
    write_json_atomic(out_dir / "retrieval_scores_wu.json", scores.to_wu_json(), indent=None)

    reading, ko_top, ko_random = _knockout_records(scores, after, knocked, over, top_effect, n_eval=n_eval,
                                                  n_total=n_total)

    summary = {
        "task": task,
        "variant": variant,
        "context_tokens": context_tokens,
        "fine_tuning_steps": steps,
        "fine_tuning_batch_size": batch_size,
        "final_train_loss": round(result.loss_curve[-1], 4),
        "metric": metric_name(task, after.metric),
        "n_eval": n_eval,
        "score_before_fine_tuning": round(before.score, 3),
        "score_after_fine_tuning": round(after.score, 3),
        "intervals": report_intervals(before, after, top_effect, seed=seed),
        "examples_counted_for_retrieval_scores": int(scores.n_counted),
        f"retrieval_heads_over_{RETRIEVAL_THRESHOLD}": _head_scores(grid, over),
        "heads_in_all": n_total,
        "knockout_top_heads": ko_top,
        "knockout_random_heads": ko_random,
        "reading": reading,
        "settings": settings,
        "report": "report.html",
    }
    write_report(out_dir / "report.html", summary, grid, top_effect)
    write_json_atomic(out_dir / "summary.json", summary)
    stages.say(f"{reading}\nResults written to {out_dir}: summary.json, model/, retrieval_scores.safetensors, "
               f"retrieval_scores_wu.json\nReport: {(out_dir / 'report.html').resolve()}")
    return summary


def _default_log(progress: bool) -> Callable[[str], None]:
    if not progress:
        return print
    from tqdm.auto import tqdm

    return tqdm.write
