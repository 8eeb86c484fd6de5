"""The study's stages (data, finetune, evaluate, scores, compare, knockout, patching) and the
helpers they share, as a mixin of :class:`rhlens.tools.study.pipeline.Study`: each stage's method
(:data:`STAGES`, in run order) does one unit of work and returns its JSON record."""

import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rhlens.tools.study.analysis import cosine, pearson, recall_interval, retrieval_heads, spearman
from rhlens.tools.study.config import EMBEDDED
from rhlens.tools.study.layout import Layout

REAL, LIMITED = "real", "real-limited"


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``stage`` for ``model`` (``None``: the whole task) of ``task``."""

    stage: str
    task: str
    model: str | None
    record: str  # the run-folder path of its JSON record

    @property
    def label(self) -> str:
        return f"{self.stage} {self.task}" + (f"/{self.model}" if self.model else "")


class StageRunner:
    """The stages of :class:`rhlens.tools.study.pipeline.Study` (which sets ``config``, ``folder``,
    ``progress``, ``_log`` and ``_tokenizer``)."""

    # ---- shared helpers ----------------------------------------------------------------------
    def _load_base(self) -> Any:
        from rhlens.models import load_base
        from rhlens.models.folder import load_folder

        cfg = self.config.model
        if cfg.base == EMBEDDED:
            model = load_base()
            if str(model.cfg.device) != cfg.device:
                model = model.to(cfg.device)
        else:
            model = load_folder(self.config.resolve(cfg.base), device=cfg.device, dtype=cfg.dtype)
        if cfg.n_ctx or cfg.rotary_base:
            from rhlens.training import extend_context

            extend_context(model, cfg.n_ctx or int(model.cfg.n_ctx), rotary_base=cfg.rotary_base or None)
        return model

    def _model(self, task: str, name: str) -> Any:
        from rhlens.models import load_model

        return load_model(self.folder.file(Layout.model_dir(task, name)), device=self.config.model.device)

    def _examples(self, task: str, name: str, n: int | None = None) -> list:
        from rhlens.tasks import load_jsonl

        examples = load_jsonl(self.folder.file(Layout.data_set(task, name)))
        return examples if n is None else examples[:n]

    @staticmethod
    def _train_set(model: str) -> str:
        return {REAL: "real_train", LIMITED: "real_limited"}.get(model, f"synthetic_{model}")

    def _heads(self, task: str, model: str):
        from rhlens.scoring import HeadScores

        method = self.config.scores.methods[0]
        scores = HeadScores.load(self.folder.file(Layout.scores_file(task, model, method)))
        return scores, retrieval_heads(scores.scores, threshold=self.config.scores.threshold, top_k=self.config.scores.top_k)

    # ---- stages (each returns the unit's JSON record) ---------------------------------------
    def _data(self, unit: Unit) -> dict[str, Any]:
        from rhlens.tools.study.data import build_sets

        if self._tokenizer is None:
            self._tokenizer = self._load_base().tokenizer
        sets, summary = build_sets(self.config, unit.task, self._tokenizer, log=self._log, progress=self.progress)
        from rhlens.tasks import save_jsonl

        for name, examples in sets.items():
            save_jsonl(examples, self.folder.file(Layout.data_set(unit.task, name)))
        return summary

    def _finetune(self, unit: Unit) -> dict[str, Any]:
        from rhlens.models import save_model
        from rhlens.training import TrainConfig, train

        cfg, ft = self.config, self.config.finetune
        examples = self._examples(unit.task, self._train_set(unit.model))
        model = self._load_base()
        tc = TrainConfig(
            steps=ft.steps, batch_size=ft.batch_size, lr=ft.lr, warmup_steps=ft.warmup_steps,
            grad_accum_steps=ft.grad_accum_steps, trainable=ft.trainable, lora_rank=ft.lora_rank,
            lora_alpha=ft.lora_alpha, lora_targets=ft.lora_targets, seed=cfg.seed, save_every=ft.save_every,
            keep_last=1, resume=True, progress=self.progress,
        )
        train_dir = self.folder.file(Layout.train_dir(unit.task, unit.model))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="resume=True but .* holds no complete checkpoint")
            result = train(model, examples, tc, out_dir=train_dir)
        save_model(model, self.folder.file(Layout.model_dir(unit.task, unit.model)))
        shutil.rmtree(train_dir, ignore_errors=True)  # checkpoints only served resuming this fine-tune
        return {
            "train_set": self._train_set(unit.model), "n_examples": len(examples), "steps": result.steps,
            "final_loss": result.loss_curve[-1] if result.loss_curve else None,
            "loss_curve": [round(x, 5) for x in result.loss_curve], "train_config": tc.to_dict(),
        }

    def _evaluate(self, unit: Unit) -> dict[str, Any]:
        from rhlens.evaluation import evaluate

        result = evaluate(self._model(unit.task, unit.model), self._examples(unit.task, "real_test"),
                          options=self._run_options())
        return {"accuracy": result.score, "metric": result.metric, "per_example": result.per_example.tolist(),
                "predictions": result.predictions}

    def _scores(self, unit: Unit) -> dict[str, Any]:
        from rhlens.tools.study.pieces import save_method_scores

        s = self.config.scores
        model = self._model(unit.task, unit.model)
        examples = self._examples(unit.task, "real_test", s.n_examples)
        records, _ = save_method_scores(
            model, examples, s.methods, path_of=self.folder.file, threshold=s.threshold, top_k=s.top_k,
            files_of=lambda m: (Layout.scores_file(unit.task, unit.model, m), Layout.wu_json(unit.task, unit.model, m)),
            max_new_tokens=s.max_new_tokens, batch_size=s.batch_size, progress=self.progress, rule=s.rule, gate=s.gate)
        return {"methods": records}

    def _compare(self, unit: Unit) -> dict[str, Any]:
        import torch

        from rhlens.heads import HeadSet
        from rhlens.scoring import HeadScores
        from rhlens.stats import correlation

        cfg, task = self.config, unit.task
        models = cfg.model_names(task)
        accuracy = {m: self.folder.read(Layout.record("evaluate", task, m))["accuracy"] for m in models}
        scores_rec = {m: self.folder.read(Layout.record("scores", task, m))["methods"] for m in models}
        out: dict[str, Any] = {"accuracy": accuracy, "methods": {}}
        others = [m for m in models if m != REAL]
        for method in cfg.scores.methods:
            ref = HeadSet(scores_rec[REAL][method]["retrieval_heads"])
            ref_map = torch.tensor(scores_rec[REAL][method]["scores"])
            ref_scores = HeadScores.load(self.folder.file(Layout.scores_file(task, REAL, method)))
            per_model = {}
            for m in models:
                heads = HeadSet(scores_rec[m][method]["retrieval_heads"])
                other = HeadScores.load(self.folder.file(Layout.scores_file(task, m, method)))
                per_model[m] = {
                    "n_heads": len(heads),
                    "recall": heads.recall(ref) if ref else None,
                    "recall_interval": recall_interval(ref_scores, other, threshold=cfg.scores.threshold,
                                                       top_k=cfg.scores.top_k, seed=cfg.seed),
                    "precision": heads.precision(ref) if heads and ref else None,
                    "jaccard": heads.jaccard(ref) if heads or ref else None,
                    "cosine": cosine(ref_map, torch.tensor(scores_rec[m][method]["scores"])),
                    "shared": sorted(str(h) for h in heads & ref),
                }
            recall = [per_model[m]["recall"] for m in others]
            acc = [accuracy[m] for m in others]
            ok = all(r is not None for r in recall)
            out["methods"][method] = {
                "reference_heads": [str(h) for h in ref.ordered()],
                "models": per_model,
                "correlation": {
                    "models": others,
                    "spearman": spearman(recall, acc) if ok else None,
                    "pearson": pearson(recall, acc) if ok else None,
                    "tests": {kind: correlation(recall, acc, method=kind, seed=cfg.seed) if ok else None
                              for kind in ("spearman", "pearson")},
                },
            }
        return out

    def _intact(self, task: str, model: str, n: int) -> Any:
        """The evaluate stage's result of ``model`` on the first ``n`` test examples (an
        :class:`rhlens.EvalResult`): the intact baseline knockout and patching reuse instead of
        evaluating the model again."""
        import torch

        from rhlens.evaluation import EvalResult

        rec = self.folder.read(Layout.record("evaluate", task, model))
        predictions = rec.get("predictions")
        return EvalResult(per_example=torch.tensor(rec["per_example"][:n]), predictions=None if predictions is None else predictions[:n],
                          metric=rec["metric"])

    def _run_options(self) -> Any:
        """How the analyzers run: the config's decoding budget and batch size, this study's bars."""
        from rhlens.evaluation import RunOptions

        ev = self.config.evaluate
        return RunOptions(max_new_tokens=ev.max_new_tokens, batch_size=ev.batch_size, progress=self.progress)

    def _knockout(self, unit: Unit) -> dict[str, Any]:
        from rhlens.interventions import knockout_effect

        cfg, k = self.config, self.config.knockout
        scores, heads = self._heads(unit.task, unit.model)
        if not heads:
            return {"heads": [], "skipped": f"no head scored above {cfg.scores.threshold}", "baseline": None,
                    "retrieval": None, "random": [], "random_heads": []}
        model = self._model(unit.task, unit.model)
        examples = self._examples(unit.task, "real_test", k.n_examples)
        baseline = self._intact(unit.task, unit.model, len(examples))
        effect = knockout_effect(model, examples, heads, baseline=baseline, mode=k.mode,
                                 reference=examples if k.mode == "mean" else None, n_random=k.n_random, scores=scores,
                                 threshold=cfg.scores.threshold, seed=cfg.seed, options=self._run_options())
        return {"heads": [str(h) for h in heads.ordered()], "baseline": baseline.score, "retrieval": effect.knocked.score,
                "random": [c.score for c in effect.controls],
                "random_heads": [[str(h) for h in c.ordered()] for c in effect.control_heads], "mode": k.mode,
                "n_examples": len(examples), "random_excluded": effect.control_excluded.labels(),
                "per_example": {"baseline": baseline.per_example.tolist(), "retrieval": effect.knocked.per_example.tolist(),
                                "random": [c.per_example.tolist() for c in effect.controls]}}

    def _patching(self, unit: Unit) -> dict[str, Any]:
        from rhlens.interventions import patching_table
        from rhlens.interventions.head_sets import control_exclusion

        cfg, p = self.config, self.config.patching
        src_scores, src = self._heads(unit.task, REAL)
        tgt_scores, tgt = self._heads(unit.task, unit.model)
        if not src:
            return {"skipped": f"the real-data model has no head above {cfg.scores.threshold}", "rows": {},
                    "source_score": None}
        source, target = self._model(unit.task, REAL), self._model(unit.task, unit.model)
        examples = self._examples(unit.task, "real_test", p.n_examples)
        kw = dict(options=self._run_options())
        exclude = control_exclusion(src | tgt, scores=[src_scores, tgt_scores], threshold=cfg.scores.threshold,
                                    n_total=src_scores.n_layers * src_scores.n_heads, what="the study's patching")
        table = patching_table(source, target, examples, src, tgt, k=None, positions=p.positions,
                               n_random=p.n_random, seed=cfg.seed, exclude=exclude,
                               baseline=self._intact(unit.task, unit.model, len(examples)), **kw)
        source_score = self._intact(unit.task, REAL, len(examples)).score  # evaluated once, by its evaluate unit
        rows = {}
        for row in table.rows:
            rows[row.name] = {"heads": row.heads.labels(), "score": row.score, "delta": row.delta, "draws": list(row.draws),
                              "per_example": list(row.per_example)}
        return {"rows": rows, "source_score": source_score, "source_heads": src.labels(), "target_heads": tgt.labels(),
                "random_excluded": exclude.labels(), "positions": p.positions, "n_examples": len(examples)}


    def _detectors(self, unit: Unit) -> dict[str, Any]:
        from rhlens.tools.study.detectors import run_detectors

        cfg, s = self.config, self.config.scores
        model = self._model(unit.task, unit.model)
        examples = self._examples(unit.task, "real_test", s.n_examples)
        folder = Layout.detectors_dir(unit.task, unit.model)
        summary = run_detectors(model, examples, self.folder.file(folder), detectors=s.detectors, ks=(1, 2, 3, 5),
                                n_random=cfg.knockout.n_random, seed=cfg.seed, max_new_tokens=s.max_new_tokens,
                                batch_size=s.batch_size, progress=self.progress, title=f"{unit.task}: head detectors")
        return {**summary, "folder": folder, "n_examples": len(examples)}


#: each stage, in run order, and the method that does one unit of it
STAGES: dict[str, Callable[[StageRunner, Unit], dict[str, Any]]] = {
    "data": StageRunner._data,
    "finetune": StageRunner._finetune,
    "evaluate": StageRunner._evaluate,
    "scores": StageRunner._scores,
    "compare": StageRunner._compare,
    "knockout": StageRunner._knockout,
    "patching": StageRunner._patching,
    "detectors": StageRunner._detectors,
}
