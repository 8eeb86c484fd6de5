"""``StudyConfig``: every knob of :class:`rhlens.Study`, loadable from TOML.

A study config is a TOML file with the sections below; the presets ``tiny``, ``smoke`` and
``paper`` ship as ``rhlens/recipes/study_<name>.toml`` and document every key in comments.
Unknown sections or keys, and values of the wrong type or range, raise a ``ValueError`` naming the
file, the key and the fix.

Example: :class:`StudyConfig`.
"""

import hashlib
import json
import sys
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from rhlens.dtypes import DTYPE_NAMES
from rhlens.interventions.options import KNOCKOUT_MODES, PATCH_POSITIONS
from rhlens.training.config import TRAINABLE

# EMBEDDED and PRESETS are imported from here elsewhere (rhlens.cli, rhlens.tools.study.stages)
from rhlens.tools.study.sections import (  # noqa: F401
    _SECTIONS,
    EMBEDDED,
    PRESETS,
    DataSection,
    EstimateSection,
    EvaluateSection,
    FinetuneSection,
    KnockoutSection,
    ModelSection,
    PatchingSection,
    ScoresSection,
    score_gates,
    score_methods,
    score_rules,
    study_tasks,
)


@dataclass(frozen=True)
class StudyConfig:
    """The whole study (see the preset TOML files for an annotated example of every key).

    Top level:
        name: a label for the report.
        tasks: the tasks studied, each on its own (``mdqa``, ``musique``, ``summhay``, ``kv``).
        seeds: the replicates: each seed is a whole study of its own (data, fine-tunes, random
            heads and draws), and results pool them (intervals over seeds and test examples).
            ``seed = N`` (one replicate) is accepted as ``seeds = [N]``.

    Sections (each documented on its class): ``[model]`` :class:`ModelSection`, ``[data]``
    :class:`DataSection`, ``[finetune]`` :class:`FinetuneSection`, ``[evaluate]``
    :class:`EvaluateSection`, ``[scores]`` :class:`ScoresSection`, ``[knockout]``
    :class:`KnockoutSection`, ``[patching]`` :class:`PatchingSection`, ``[estimate]``
    :class:`EstimateSection`.

    ``source`` (where it was loaded from, for error messages and relative paths) is not part of
    the config's identity (:meth:`digest`).

    >>> cfg = StudyConfig.preset("smoke")
    >>> cfg.tasks, cfg.finetune.steps > 0
    (('mdqa',), True)
    >>> StudyConfig.from_dict({"finetune": {"stepz": 3}})
    Traceback (most recent call last):
    ValueError: dict: unknown key [finetune] stepz; known keys: batch_size, grad_accum_steps, lora_alpha, lora_rank, lora_targets, lr, save_every, steps, trainable, warmup_steps
    >>> StudyConfig.from_dict(cfg.to_dict()) == cfg
    True
    """

    name: str = "study"
    tasks: tuple[str, ...] = ("mdqa",)
    seeds: tuple[int, ...] = (0,)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    finetune: FinetuneSection = field(default_factory=FinetuneSection)
    evaluate: EvaluateSection = field(default_factory=EvaluateSection)
    scores: ScoresSection = field(default_factory=ScoresSection)
    knockout: KnockoutSection = field(default_factory=KnockoutSection)
    patching: PatchingSection = field(default_factory=PatchingSection)
    estimate: EstimateSection = field(default_factory=EstimateSection)
    source: str = field(default="dict", compare=False)

    def __post_init__(self) -> None:
        self._check()

    # ---- loading -----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "dict") -> "StudyConfig":
        """Build from a (TOML-shaped) dict; unknown keys and bad values raise naming ``source``."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a table of study keys, got {type(data).__name__}")
        top = {f.name: f for f in fields(cls) if f.name not in _SECTIONS and f.name != "source"}
        unknown = sorted(set(data) - set(top) - set(_SECTIONS) - {"seed"})
        if unknown:
            raise ValueError(
                f"{source}: unknown key(s) {', '.join(unknown)}; known: {', '.join([*top, *(f'[{s}]' for s in _SECTIONS)])}"
            )
        kwargs: dict[str, Any] = {}
        if "seed" in data:  # one replicate, the older spelling
            if "seeds" in data:
                raise ValueError(f"{source}: give seeds = [...] or seed = N, not both")
            kwargs["seeds"] = (_coerce(data["seed"], int, f"{source}: seed"),)
        for name, f in top.items():
            if name in data:
                kwargs[name] = _coerce(data[name], f.type, f"{source}: {name}")
        for name, section in _SECTIONS.items():
            if name in data:
                kwargs[name] = _section(section, data[name], f"{source}: [{name}]", source)
        try:
            return cls(**kwargs, source=source)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path: "str | Path") -> "StudyConfig":
        """Load a ``.toml`` study config."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"study config {path} does not exist (or is not a file)")
        try:
            with path.open("rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML: {err}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def preset(cls, name: str) -> "StudyConfig":
        """A shipped preset: ``"tiny"`` (the default), ``"smoke"`` or ``"paper"``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
        return cls.from_file(preset_path(name))

    # ---- identity, derived values -----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-shaped dict (tuples become lists); ``source`` is left out."""
        out = asdict(self)
        out.pop("source")
        return json.loads(json.dumps(out))

    def digest(self) -> str:
        """A hash of everything that shapes the results (the run folder records it)."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> "StudyConfig":
        """A copy with top-level ``changes`` (``tasks``, ``seeds``, or whole sections), validated."""
        return replace(self, **changes)

    def with_base(self, base: str) -> "StudyConfig":
        """A copy fine-tuning ``base`` (``"embedded"`` or a folder)."""
        return replace(self, model=replace(self.model, base=str(base)))

    @property
    def seed(self) -> int:
        """The first replicate's seed (a one-seed study's only seed)."""
        return self.seeds[0]

    def replicate(self, seed: int) -> "StudyConfig":
        """The one-seed study of replicate ``seed`` (each replicate runs in its own folder).

        >>> StudyConfig.preset("smoke").replace(seeds=(0, 1)).replicate(1).seeds
        (1,)
        """
        if seed not in self.seeds:
            raise ValueError(f"seed {seed} is not one of this study's seeds {list(self.seeds)}")
        return replace(self, seeds=(seed,))

    @property
    def prompt_tokens(self) -> int:
        """The prompt budget: ``data.context_tokens - data.answer_tokens - 1`` (BOS)."""
        return self.data.context_tokens - self.data.answer_tokens - 1

    @staticmethod
    def resolve(path: str) -> Path:
        """A path from the config (``~`` expanded; relative paths are relative to the working folder)."""
        return Path(path).expanduser()

    def real_files(self, task: str) -> dict[str, Path] | None:
        """``{"train": Path, "test": Path}`` for ``task``, or ``None`` when its data is generated."""
        entry = self.data.real_files.get(task)
        if not entry:
            return None
        return {k: self.resolve(v) for k, v in entry.items()}

    def model_names(self, task: str) -> list[str]:
        """The fine-tuned models: ``real``, ``real-limited`` and one per synthetic variant."""
        return ["real", "real-limited", *self.data.variants]

    # ---- validation ----------------------------------------------------------------------------
    def _check(self) -> None:
        from rhlens.tasks.generators.common import QUESTION_FORMS, VARIANTS

        d, s = self.data, self.scores

        def need(ok: bool, key: str, value: Any, why: str) -> None:
            if not ok:
                raise ValueError(f"{key}={value!r}: {why}")

        tasks = study_tasks()
        need(bool(self.tasks), "tasks", self.tasks, "name at least one task")
        for t in self.tasks:
            need(t in tasks, "tasks", self.tasks, f"each task must be one of {tasks} (the tasks with a real-data loader)")
        need(len(set(self.tasks)) == len(self.tasks), "tasks", self.tasks, "a task is listed twice")
        need(bool(self.seeds) and len(set(self.seeds)) == len(self.seeds) and all(s >= 0 for s in self.seeds),
             "seeds", self.seeds, "give one or more distinct non-negative seeds")
        need(self.model.dtype in DTYPE_NAMES, "[model] dtype", self.model.dtype, f"use one of {', '.join(DTYPE_NAMES)}")
        need(self.model.n_ctx >= 0, "[model] n_ctx", self.model.n_ctx, "must be 0 (keep) or positive")
        need(self.model.rotary_base >= 0, "[model] rotary_base", self.model.rotary_base, "must be 0 (keep) or positive")
        need(self.model.n_ctx == 0 or self.model.n_ctx >= d.context_tokens, "[model] n_ctx", self.model.n_ctx,
             f"must hold [data] context_tokens={d.context_tokens}")
        need(d.answer_tokens >= 2, "[data] answer_tokens", d.answer_tokens, "must be at least 2 (answer and EOS)")
        need(self.prompt_tokens >= 16, "[data] context_tokens", d.context_tokens,
             f"leaves {self.prompt_tokens} prompt tokens after answer_tokens={d.answer_tokens} and BOS; raise it")
        for key in ("n_train", "n_test", "n_limited"):
            need(getattr(d, key) >= 1, f"[data] {key}", getattr(d, key), "must be at least 1")
        need(d.n_limited <= d.n_train, "[data] n_limited", d.n_limited, f"must not exceed n_train={d.n_train}")
        need(d.n_docs >= 0, "[data] n_docs", d.n_docs, "must be 0 (generator default) or positive")
        need(d.real_variant in VARIANTS, "[data] real_variant", d.real_variant, f"use one of {VARIANTS}")
        need(d.real_question in QUESTION_FORMS, "[data] real_question", d.real_question, f"use one of {QUESTION_FORMS}")
        need(d.test_depth == -1 or 0 <= d.test_depth <= 1, "[data] test_depth", d.test_depth,
             "give a depth fraction in [0, 1] or -1 (a random document per example)")
        need(bool(d.variants), "[data] variants", d.variants, "name at least one synthetic variant")
        for v in d.variants:
            need(v in VARIANTS, "[data] variants", d.variants, f"each must be one of {VARIANTS}")
        need(len(set(d.variants)) == len(d.variants), "[data] variants", d.variants, "a variant is listed twice")
        for task, entry in d.real_files.items():
            need(task in tasks, "[data.real_files]", task, f"tables must be named after a task {tasks}")
            need(isinstance(entry, dict) and set(entry) == {"train", "test"}
                 and all(isinstance(v, str) and v for v in entry.values()),
                 f"[data.real_files.{task}]", entry, "give exactly train = \"PATH\" and test = \"PATH\"")
        for task in self.tasks:
            if task not in d.real_files:
                need(d.real_variant not in d.variants, "[data] variants", d.variants,
                     f"task {task} has no real files, so its real set is the generated {d.real_variant!r} "
                     f"variant; drop {d.real_variant!r} from variants (or give [data.real_files.{task}])")
        ft = self.finetune
        for key in ("steps", "batch_size", "grad_accum_steps", "lora_rank"):
            need(getattr(ft, key) >= 1, f"[finetune] {key}", getattr(ft, key), "must be at least 1")
        need(ft.lr > 0, "[finetune] lr", ft.lr, "must be positive")
        need(ft.warmup_steps >= 0 and ft.save_every >= 0, "[finetune] warmup_steps/save_every",
             (ft.warmup_steps, ft.save_every), "must be 0 or more")
        need(ft.trainable in TRAINABLE, "[finetune] trainable", ft.trainable, f"use one of {', '.join(TRAINABLE)}")
        need(bool(ft.lora_targets) and set(ft.lora_targets) <= set("qkvo"), "[finetune] lora_targets",
             ft.lora_targets, "use a non-empty subset of q, k, v, o")
        need(ft.batch_size % ft.grad_accum_steps == 0, "[finetune] batch_size", ft.batch_size,
             f"must be a multiple of grad_accum_steps={ft.grad_accum_steps}")
        need(1 <= self.evaluate.max_new_tokens <= d.answer_tokens, "[evaluate] max_new_tokens",
             self.evaluate.max_new_tokens, f"must lie in 1..[data] answer_tokens={d.answer_tokens}")
        need(self.evaluate.batch_size >= 1, "[evaluate] batch_size", self.evaluate.batch_size, "must be at least 1")
        _check_score_options(s, need)
        need(1 <= s.max_new_tokens <= d.answer_tokens, "[scores] max_new_tokens", s.max_new_tokens,
             f"must lie in 1..[data] answer_tokens={d.answer_tokens}")
        need(0 <= s.threshold < 1, "[scores] threshold", s.threshold, "must lie in [0, 1)")
        need(s.top_k >= 1 and s.batch_size >= 1, "[scores] top_k/batch_size", (s.top_k, s.batch_size), "must be at least 1")
        if s.detectors:
            from rhlens.scoring.compare import check_detectors

            check_detectors(s.detectors, what="[scores] detectors")
        for sec in ("scores", "knockout", "patching"):
            n = getattr(self, sec).n_examples
            need(1 <= n <= d.n_test, f"[{sec}] n_examples", n, f"must lie in 1..[data] n_test={d.n_test}")
        need(self.knockout.n_random >= 1, "[knockout] n_random", self.knockout.n_random, "must be at least 1")
        need(self.knockout.mode in KNOCKOUT_MODES, "[knockout] mode", self.knockout.mode, f"use one of {KNOCKOUT_MODES}")
        need(self.patching.n_random >= 1, "[patching] n_random", self.patching.n_random, "must be at least 1")
        need(self.patching.positions in PATCH_POSITIONS, "[patching] positions", self.patching.positions,
             f"use one of {PATCH_POSITIONS}")
        need(self.estimate.flops_per_second > 0, "[estimate] flops_per_second", self.estimate.flops_per_second,
             "must be positive")


def _check_score_options(s: ScoresSection, need: Any) -> None:
    """``[scores]`` methods, rule and gate: values :func:`rhlens.retrieval_scores` accepts together."""
    methods = score_methods()
    need(bool(s.methods) and all(m in methods for m in s.methods) and len(set(s.methods)) == len(s.methods),
         "[scores] methods", s.methods, f"use a non-empty list of distinct {methods}")
    need(s.rule in score_rules(), "[scores] rule", s.rule, f"use one of {score_rules()}")
    need(s.gate in score_gates(), "[scores] gate", s.gate, f"use one of {score_gates()}")
    need(s.rule != "wu-literal" or (tuple(s.methods), s.gate) == (("decode",), "rouge"), "[scores] rule", s.rule,
         "reproduces Wu et al.'s code, which decodes and gates with ROUGE: set methods = [\"decode\"] and gate = "
         "\"rouge\" with it")


def preset_path(name: str) -> Path:
    """The shipped TOML file of preset ``name``."""
    return Path(__file__).resolve().parents[2] / "recipes" / f"study_{name}.toml"


def _section(cls: type, data: Any, where: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where} must be a table, got {type(data).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"{source}: unknown key {where.split(': ', 1)[-1]} {', '.join(unknown)}; "
                         f"known keys: {', '.join(sorted(known))}")
    return cls(**{k: _coerce(v, known[k].type, f"{where} {k}") for k, v in data.items()})


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a simple annotation (int, float, str, bool, tuple[str, ...], dict)."""
    origin = typing.get_origin(annotation) or annotation
    if origin is tuple and typing.get_args(annotation)[:1] == (int,):
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{where}={value!r}: expected a list of integers")
        return tuple(value)
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"{where}={value!r}: expected a list of strings")
        return tuple(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{where}={value!r}: expected a table")
        return dict(value)
    if origin is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}={value!r}: expected a number")
        return float(value)
    if origin is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}={value!r}: expected an integer")
        return value
    if origin is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}={value!r}: expected a string")
        return value
    raise TypeError(f"unsupported annotation {annotation!r}")  # pragma: no cover
