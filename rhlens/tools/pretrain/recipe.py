"""The base-model recipe: a model config and a curriculum of training stages, read from TOML.

A recipe file::

    name = "rhlens-base"
    seed = 0
    model_format = "hf"   # optional: the final model as a Hugging Face folder (default "rhlens")

    [model]               # tiny_llama overrides
    n_layers = 3
    d_model = 128

    [[stages]]
    name = "induction-64"
    context_tokens = 64
    n_examples = 4000
    mix = { induction = 0.6, lm = 0.2, qa = 0.2 }
    [stages.train]        # rhlens.TrainConfig fields
    steps = 400
    lr = 2e-3
    [stages.supervision]  # optional: attention supervision (rhlens.tools.pretrain.supervision)
    previous_token_heads = ["L0H0", "L0H1"]
    retrieval_heads = ["L2H0"]
    anti_weight = 0.5     # push every other head off the retrieval targets
    reach = 64            # optional: answers further back than this are pushed off (latent reach)
    [stages.supervision.cue_heads]   # optional: answers belong to the heads of their cues (rhlens.tools.pretrain.cues)
    year = ["L2H1"]

>>> recipe = load_recipe(default_recipe_path())
>>> recipe.name, len(recipe.stages) > 0
('rhlens-base', True)
"""

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from rhlens.tasks import TASKS
from rhlens.tools.pretrain.supervision import AttentionSupervision
from rhlens.training.config import TrainConfig

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_STAGE_KEYS = {"name", "context_tokens", "n_examples", "mix", "tasks", "train", "supervision"}
_TOP_KEYS = {"name", "seed", "model", "stages", "eval", "storage_dtype", "model_format"}
STORAGE_DTYPES = ("float32", "bfloat16")
MODEL_FORMATS = ("rhlens", "hf")
"""How the final model folder is written: ``"rhlens"`` (:func:`rhlens.save_model`) or ``"hf"`` (a
Hugging Face checkpoint, :func:`rhlens.models.save_hf_checkpoint`, that both TransformerLens
majors load with the same logits)."""


@dataclass(frozen=True)
class Stage:
    """One curriculum stage: ``n_examples`` of ``mix`` at ``context_tokens``, trained with ``train``."""

    name: str
    context_tokens: int
    n_examples: int
    mix: dict[str, float]
    train: TrainConfig
    tasks: tuple[str, ...] = TASKS
    supervision: AttentionSupervision | None = None


@dataclass(frozen=True)
class Recipe:
    """The whole base-model recipe (see the module docstring for the file format)."""

    name: str
    seed: int
    model: dict[str, Any]
    stages: tuple[Stage, ...]
    eval: dict[str, Any] = field(default_factory=dict)
    source: str = "<dict>"
    storage_dtype: str = "float32"
    """How the final weights are stored (``"bfloat16"`` halves the file; they load as float32)."""
    model_format: str = "rhlens"
    """How the final model folder is written (:data:`MODEL_FORMATS`)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "seed": self.seed,
            "model": dict(self.model),
            "eval": dict(self.eval),
            **({"storage_dtype": self.storage_dtype} if self.storage_dtype != "float32" else {}),
            **({"model_format": self.model_format} if self.model_format != "rhlens" else {}),
            "stages": [
                {
                    "name": s.name,
                    "context_tokens": s.context_tokens,
                    "n_examples": s.n_examples,
                    "mix": dict(s.mix),
                    "tasks": list(s.tasks),
                    "train": s.train.to_dict(),
                    **({"supervision": s.supervision.to_dict()} if s.supervision else {}),
                }
                for s in self.stages
            ],
        }


def default_recipe_path() -> Path:
    """The recipe the shipped base model was trained with (``rhlens/recipes/base.toml``)."""
    return Path(str(resources.files("rhlens") / "recipes" / "base.toml"))


def recipe_from_dict(data: dict[str, Any], *, source: str = "<dict>") -> Recipe:
    """Validate and build a :class:`Recipe`; errors name ``source`` and the offending key."""
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ValueError(f"{source}: unknown recipe key(s) {sorted(unknown)}; known: {sorted(_TOP_KEYS)}")
    stages_raw = data.get("stages") or []
    if not stages_raw:
        raise ValueError(f"{source}: the recipe has no [[stages]]")
    stages = []
    names = set()
    for i, raw in enumerate(stages_raw):
        where = f"{source}: stages[{i}]"
        bad = set(raw) - _STAGE_KEYS
        if bad:
            raise ValueError(f"{where}: unknown key(s) {sorted(bad)}; known: {sorted(_STAGE_KEYS)}")
        for key in ("name", "context_tokens", "n_examples", "mix"):
            if key not in raw:
                raise ValueError(f"{where}: missing '{key}'")
        if not isinstance(raw["name"], str) or not _NAME.fullmatch(raw["name"]) or raw["name"] in {".", ".."}:
            raise ValueError(
                f"{where}: stage name {raw['name']!r} must be a plain folder name (letters, digits, '.', '_', '-', "
                "no path separators, not '.' or '..'): the stage checkpoints into <out>/stages/<name>"
            )
        if raw["name"] in names:
            raise ValueError(f"{where}: duplicate stage name {raw['name']!r}")
        names.add(raw["name"])
        train_cfg = TrainConfig.from_dict(dict(raw.get("train", {})), source=f"{where}.train")
        stages.append(
            Stage(
                name=str(raw["name"]),
                context_tokens=int(raw["context_tokens"]),
                n_examples=int(raw["n_examples"]),
                mix={k: float(v) for k, v in raw["mix"].items()},
                train=train_cfg,
                tasks=tuple(raw.get("tasks", Stage.__dataclass_fields__["tasks"].default)),
                supervision=(
                    AttentionSupervision.from_dict(raw["supervision"], source=f"{where}.supervision")
                    if raw.get("supervision") else None
                ),
            )
        )
    storage = data.get("storage_dtype", "float32")
    if storage not in STORAGE_DTYPES:
        raise ValueError(f"{source}: storage_dtype {storage!r} is not one of {list(STORAGE_DTYPES)}")
    model_format = data.get("model_format", "rhlens")
    if model_format not in MODEL_FORMATS:
        raise ValueError(f"{source}: model_format {model_format!r} is not one of {list(MODEL_FORMATS)}")
    return Recipe(
        storage_dtype=storage,
        model_format=model_format,
        name=str(data.get("name", "rhlens-base")),
        seed=int(data.get("seed", 0)),
        model=dict(data.get("model", {})),
        stages=tuple(stages),
        eval=dict(data.get("eval", {})),
        source=source,
    )


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe TOML file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Recipe file {path} does not exist; rhlens's own is at {default_recipe_path()}")
    with open(path, "rb") as f:
        try:
            data = tomllib.load(f)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path}: not valid TOML: {err}") from None
    return recipe_from_dict(data, source=str(path))
