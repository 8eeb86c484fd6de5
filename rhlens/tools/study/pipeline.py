"""``Study``: the paper's whole pipeline, stage by stage, into one resumable run folder.

For each task of the config, in order:

1. **data**: the real training and test sets (the real loaders when the config names files; else
   the most realistic generated variant), the limited real subset, and one synthetic set per
   variant; every example is checked to fit ``[data] context_tokens`` (prompt budget = context
   minus answer room minus BOS).
2. **finetune**: a fresh copy of the base per training set (context extension when asked).
3. **evaluate**: every model on the same real test set.
4. **scores**: every model's retrieval scores (each method of ``[scores] methods``), saved as
   :class:`rhlens.HeadScores` and in Wu et al.'s JSON format.
5. **compare**: recall of the real model's retrieval heads in each model, cosine similarity of
   score maps, Spearman and Pearson correlation of recall with accuracy across the other models.
6. **knockout**: each model's retrieval heads against as many random heads (several draws).
7. **patching**: the real-data model's heads patched into each other model (original,
   intersection, complement, random rows).

Then ``results.json``, ``report.md`` and ``report.html`` are written from the stages' records.
Each unit of work (one model in one stage) ends by writing its JSON record; a resumed run skips
recorded units, so an interruption loses at most the unit in progress (and a fine-tune resumes
from its last checkpoint).

The run folder's layout is :class:`rhlens.tools.study.layout.Layout`; the stages, in order, and the
method that does one unit of each are :data:`rhlens.tools.study.stages.STAGES`. One study runs in a
folder at a time (:meth:`RunFolder.lock`).
"""

import platform
import time
from pathlib import Path
from typing import Any, Callable

from rhlens.files import file_digest
from rhlens.progress import progress_bar
from rhlens.tasks.generators.common import QUESTION_TASKS
from rhlens.tools.study.config import EMBEDDED, PRESETS, StudyConfig
from rhlens.tools.study.folder import RunFolder
from rhlens.tools.study.layout import Layout
from rhlens.tools.study.schedule import run_units
from rhlens.tools.study.stages import REAL, STAGES, StageRunner, Unit

#: config keys that change no result: editing them resumes the same study
COSMETIC = ("name", "estimate")
#: CPU seconds (one thread) to generate and fit-check one example per 256 context tokens. Measured by
#: ``bench/bench_data_generation.py`` (the data stage's own ``build_sets``, base tokenizer): the tiny
#: preset's 6,050 examples took 39.0 s of CPU (6.4 ms each; 5.5-7.2 ms for every task at 256 tokens,
#: 6.1 ms per 256 at 512); ``generate`` alone at 32K tokens takes 0.83-0.99 s (6.5-7.7 ms per 256, so
#: the paper preset's data are about as dear per token). Wall time on a loaded machine is longer: a
#: tiny study's data record read 253 s with other processes holding both cores.
DATA_SECONDS_PER_EXAMPLE = 0.007


def package_versions() -> dict[str, str]:
    """The versions of Python and of the packages a result depends on (a run records them)."""
    from importlib import metadata

    out = {"python": platform.python_version()}
    for pkg in ("rhlens", "torch", "transformer-lens", "transformers", "numpy", "plotly"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


class Study(StageRunner):
    """The study of ``config`` in the run folder ``out``.

    Args:
        config: a :class:`StudyConfig`, the path of a TOML file, or a preset name
            (``"tiny"``, ``"smoke"``, ``"paper"``; default ``"tiny"``).
        out: the run folder (checked before any work: writable, not under a file, not another
            run's folder; a folder of the same config resumes).
        overwrite: replace a study of another config in ``out``.
        progress: tqdm bars (stage, model, step).
        log: where one-line stage messages go (default: tqdm's ``write``; ``None`` when
            ``progress`` is off: silent).
        threads: CPU threads in all. On the CPU, two or more run independent units (the
            fine-tunes; each model's evaluation, scores, knockout) side by side in that many
            worker processes of one thread (:mod:`rhlens.tools.study.schedule`); 1 (the
            default) runs every unit here, in order. A run here sets torch's thread count to what
            each worker would have (restored after it), so both give the same results.

    ``Study(config, out).run()`` does everything and returns the results dict (also written to
    ``out/results.json``); :meth:`plan` and :meth:`check` are what ``--dry-run`` prints.

    What the ``smoke`` preset would run (nothing is trained, no weights are loaded):

    >>> import tempfile
    >>> study = Study("smoke", tempfile.mkdtemp() + "/study", progress=False)
    >>> plan = study.plan()
    >>> plan["tasks"], plan["models"]
    (['mdqa'], ['real', 'real-limited', 'realistic-filler', 'fictional', 'symbolic'])
    >>> plan["units"]
    {'data': 1, 'finetune': 5, 'evaluate': 5, 'scores': 5, 'compare': 1, 'knockout': 5, 'patching': 4, 'detectors': 1}
    >>> study.check()[-1].endswith("(a new study)")
    True
    """

    def __init__(self, config: "StudyConfig | str | Path | None" = None, out: "str | Path" = "runs/study", *,
                 overwrite: bool = False, progress: bool = True, log: Callable[[str], None] | None = None,
                 threads: int = 1):
        if config is None:
            config = StudyConfig.preset("tiny")
        elif isinstance(config, (str, Path)) and str(config) in PRESETS:
            config = StudyConfig.preset(str(config))
        elif isinstance(config, (str, Path)):
            config = StudyConfig.from_file(config)
        if not isinstance(config, StudyConfig):
            raise TypeError(f"Study needs a StudyConfig, a TOML path or a preset name, got {type(config).__name__}")
        self.config = config
        self.out = Path(out)
        self.overwrite = overwrite
        self.progress = progress
        if log is None and progress:
            from tqdm.auto import tqdm

            log = tqdm.write
        self._log = log or (lambda msg: None)
        self.folder: RunFolder | None = None
        self._tokenizer: Any = None
        self.threads = threads

    # ---- plan, checks and estimate (no weights loaded) -------------------------------------
    def units(self) -> list[Unit]:
        """Every unit of work, in run order."""
        cfg, units = self.config, []
        for task in cfg.tasks:
            models = cfg.model_names(task)
            for stage in STAGES:
                per_model: dict[str, list[str | None]] = {
                    "data": [None], "compare": [None], "patching": [m for m in models if m != REAL],
                    "detectors": [REAL] if cfg.scores.detectors else []}
                for m in per_model.get(stage, models):
                    units.append(Unit(stage, task, m, Layout.record(stage, task, m)))
        return units

    def check(self) -> list[str]:
        """Check every path the study reads or writes, without loading weights; returns notes.

        Raises ``FileNotFoundError`` / ``ValueError`` / ``NotADirectoryError`` naming the path.
        """
        cfg, notes = self.config, []
        base = cfg.model.base
        if base == EMBEDDED:
            from rhlens.models.base import base_dir
            from rhlens.models.folder import folder_kind

            embedded = base_dir() / "model"
            try:
                folder_kind(embedded)
            except FileNotFoundError:
                raise FileNotFoundError(f"the embedded base is missing at {embedded}; reinstall rhlens") from None
            notes.append(f"base: the embedded base ({embedded})")
        else:
            from rhlens.models.folder import folder_kind, folder_shape

            folder = cfg.resolve(base)
            try:
                base_kind = folder_kind(folder)
            except FileNotFoundError as err:
                raise FileNotFoundError(f"[model] base = {base!r}: {err}") from None
            folder_shape(folder)  # its config file makes a model
            notes.append(f"base: {'rhlens model folder' if base_kind == 'rhlens' else 'Hugging Face checkpoint'} {folder}")
        n_ctx = self._base_shape()["n_ctx"]
        target = cfg.model.n_ctx or n_ctx
        if target < cfg.data.context_tokens:
            raise ValueError(
                f"[data] context_tokens={cfg.data.context_tokens} exceeds the base's context of {n_ctx}; "
                "set [model] n_ctx (and rotary_base) to extend it"
            )
        for task in cfg.tasks:
            files = cfg.real_files(task)
            if files is None:
                asks = (", questions in the held-out paraphrase form" if cfg.data.real_question == "paraphrase"
                        and task in QUESTION_TASKS else "")
                notes.append(f"{task}: real data generated ({cfg.data.real_variant} variant{asks})")
                continue
            for kind, path in files.items():
                if not path.is_file():
                    raise FileNotFoundError(f"[data.real_files.{task}] {kind} = {path}: no such file")
                notes.append(f"{task}: real {kind} file {path}")
            if files["train"].resolve() == files["test"].resolve() or file_digest(files["train"]) == file_digest(files["test"]):
                raise ValueError(
                    f"[data.real_files.{task}] train = {files['train']} and test = {files['test']} hold the same data: "
                    "every test example would be in the training set; give a separate test file"
                )
        identity = self.identity()
        state = RunFolder.inspect(self.out, identity, _digest(identity), overwrite=self.overwrite)
        notes.append(f"out: {self.out} ({ {'new': 'a new study', 'resume': 'resumes the same study', 'overwrite': 'replaces another study'}[state] })")
        return notes

    def identity(self) -> dict[str, Any]:
        """What the run folder records and a resumed run must match: the config (less the keys that
        change no result, :data:`COSMETIC`), the SHA-256 of every file of the base model (weights
        included) and of every real data file, so neither a changed config, nor a changed base
        model, nor an edited data file mixes into earlier results."""
        config = {k: v for k, v in self.config.to_dict().items() if k not in COSMETIC}
        real = {task: {kind: file_digest(path)[:16] for kind, path in files.items() if path.is_file()}
                for task in self.config.tasks if (files := self.config.real_files(task)) is not None}
        return {"config": config, "base": _fingerprint(self._base_folder()), **({"real_files": real} if real else {})}

    def _base_folder(self) -> Path:
        if self.config.model.base == EMBEDDED:
            from rhlens.models.base import base_dir

            return base_dir() / "model"
        return self.config.resolve(self.config.model.base)

    def _base_shape(self) -> dict[str, int]:
        """n_layers, n_heads, d_model, d_mlp, d_vocab, n_ctx, n_params of the base, from its config file."""
        from rhlens.models.folder import folder_shape

        c = folder_shape(self._base_folder())
        shape = {k: int(c[k]) for k in ("n_layers", "n_heads", "d_model", "d_head", "d_mlp", "d_vocab", "n_ctx")}
        shape["n_kv_heads"] = int(c["n_key_value_heads"] or shape["n_heads"])
        return {**shape, "n_params": _n_params(shape)}

    def plan(self) -> dict[str, Any]:
        """The units per stage and a cost estimate (FLOPs and hours at ``[estimate]`` throughput)."""
        cfg = self.config
        shape = self._base_shape()
        n_models = len(cfg.model_names(cfg.tasks[0]))
        ctx = cfg.data.context_tokens
        infer = 2 * shape["n_params"] + 2 * shape["n_layers"] * ctx * shape["d_model"]  # per token, attention included
        tok = lambda n: n * ctx  # noqa: E731 - tokens of n examples
        d = cfg.data
        per_task = {
            "finetune": 3 * infer * n_models * cfg.finetune.steps * cfg.finetune.batch_size * ctx,
            "evaluate": infer * n_models * tok(d.n_test),
            "scores": infer * n_models * len(cfg.scores.methods) * tok(cfg.scores.n_examples),
            "knockout": infer * n_models * (2 + cfg.knockout.n_random) * tok(cfg.knockout.n_examples),
            "patching": 2 * infer * (n_models - 1) * (3 + 2 * cfg.patching.n_random) * tok(cfg.patching.n_examples),
            # about 8 forwards for the detectors, 4 ks x (each detector + random draws) knockout runs
            "detectors": infer * (8 + 4 * (len(cfg.scores.detectors) + cfg.knockout.n_random)) * tok(cfg.scores.n_examples)
            if cfg.scores.detectors else 0,
        }
        flops = {k: v * len(cfg.tasks) for k, v in per_task.items()}
        flops = {k: v * len(cfg.seeds) for k, v in flops.items()}  # each seed is a whole replicate
        total = sum(flops.values())
        stages: dict[str, int] = {}
        for u in self.units():
            stages[u.stage] = stages.get(u.stage, 0) + len(cfg.seeds)
        n_generated = len(cfg.seeds) * len(cfg.tasks) * (d.n_train * (1 + len(d.variants)) + d.n_test)
        seconds = {"data": n_generated * DATA_SECONDS_PER_EXAMPLE * ctx / 256,
                   **{k: v / cfg.estimate.flops_per_second for k, v in flops.items()},
                   "compare": 1.0 * len(cfg.tasks) * len(cfg.seeds)}  # reads records, loads no model
        return {
            "tasks": list(cfg.tasks),
            "models": cfg.model_names(cfg.tasks[0]),
            "units": stages,
            "base": dict(shape),
            "flops": {k: float(f"{v:.3g}") for k, v in flops.items()},
            "total_flops": float(f"{total:.3g}"),
            "estimated_seconds": {k: round(v, 1) for k, v in seconds.items()},
            "estimated_hours": round(sum(seconds.values()) / 3600, 3),
            "flops_per_second": cfg.estimate.flops_per_second,
            "finetune_steps": len(cfg.seeds) * len(cfg.tasks) * n_models * cfg.finetune.steps,
        }

    def unit_costs(self) -> dict[str, float]:
        """Each unit's estimated seconds (its stage's share of :meth:`plan`), by record path: what
        the overall bar counts, so its time left is right."""
        plan, units = self.plan(), self.units()
        return {u.record: plan["estimated_seconds"][u.stage] / plan["units"][u.stage] for u in units}

    # ---- running ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Run (or resume) every stage, then write ``results.json``, ``report.md`` and ``report.html``."""
        from rhlens.tools.study.report import collect_results, write_reports

        self.check()
        with RunFolder.lock(self.out):  # a second study of this folder is refused while this one runs
            return self._run_locked(collect_results, write_reports)

    def _run_locked(self, collect_results: Callable[..., dict[str, Any]],
                    write_reports: Callable[[Path, dict[str, Any]], None]) -> dict[str, Any]:
        cfg = self.config
        identity = self.identity()
        self.folder = RunFolder.open(self.out, identity, _digest(identity), overwrite=self.overwrite,
                                     tasks=list(cfg.tasks))
        if len(cfg.seeds) > 1:
            return self._run_replicates(identity)
        units = self.units()
        started = time.time()
        todo = [u for u in units if not self.folder.done(u.record)]
        self._log(f"study {cfg.name!r} in {self.out}: {len(units) - len(todo)} of {len(units)} units already done")
        cost = self.unit_costs()
        bar = _bar(sum(cost.values()), sum(cost[u.record] for u in units if u not in todo), self.progress)
        workers = self.threads if cfg.model.device == "cpu" else 1
        try:
            run_units(self, units, workers=workers, threads=max(1, self.threads // workers), cost=cost, bar=bar,
                      log=self._log)
        finally:
            bar.close()
        results = collect_results(self.folder, cfg, versions=package_versions(), seconds=time.time() - started,
                                  digest=_digest(identity), base=identity["base"])
        write_reports(self.folder.path, results)
        self._log(f"study done: {self.out / Layout.REPORTS[0]}")
        return results

    def _run_replicates(self, identity: dict[str, Any]) -> dict[str, Any]:
        """Each seed as a whole one-seed study in ``seed-<n>/``, then results pooled over the seeds."""
        started = time.time()
        per_seed = []
        for seed in self.config.seeds:
            folder = self.out / Layout.replicate(seed)
            self._log(f"replicate seed {seed} of {list(self.config.seeds)}: {folder}")
            sub = Study(self.config.replicate(seed), folder, overwrite=self.overwrite,
                        progress=self.progress, log=self._log, threads=self.threads)
            per_seed.append(sub.run())
        from rhlens.tools.study.replicates import pool_results
        from rhlens.tools.study.report import write_reports

        results = pool_results(per_seed, self.config, digest=_digest(identity), seconds=time.time() - started)
        write_reports(self.out, results)
        self._log(f"study done ({len(per_seed)} seeds pooled): {self.out / Layout.REPORTS[0]}")
        return results


def _digest(identity: dict[str, Any]) -> str:
    import hashlib
    import json

    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _fingerprint(folder: Path) -> dict[str, str]:
    """``{file: sha256}`` of a model folder's files, weights included (read once per process)."""
    return {f.name: file_digest(f)[:16] for f in (sorted(folder.iterdir()) if folder.is_dir() else [])
            if f.is_file() and not f.name.startswith(".")}


def _n_params(shape: dict[str, int]) -> int:
    """Approximate parameter count of a Llama-shaped model (gated MLP) from its shape."""
    d, L = shape["d_model"], shape["n_layers"]
    attn = d * shape["d_head"] * (2 * shape["n_heads"] + 2 * shape.get("n_kv_heads", shape["n_heads"]))
    return int(L * (attn + 3 * d * shape["d_mlp"]) + 2 * shape["d_vocab"] * d)


def _bar(total: float, done: float, enabled: bool) -> Any:
    """The study's overall bar, counting estimated seconds (a fine-tune weighs what it costs)."""
    return progress_bar(enabled=enabled, desc="study", total=total, unit="est. s", leave=True, initial=done, position=0,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")

