"""``TrainConfig``: every knob of :func:`rhlens.train`, loadable from TOML or JSON.

Example: :class:`TrainConfig`.

A TOML file holds the same keys at top level or under a ``[train]`` table::

    [train]
    lr = 3e-4
    steps = 100
    trainable = "lora"
"""

import json
import math
import numbers
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args, no_type_check

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

Trainable = Literal["all", "attention", "lora"]
TRAINABLE: tuple[str, ...] = get_args(Trainable)
_PADDING = ("left", "right")
_TRUNCATION = (None, "left")
_EVAL_METRICS = ("loss", "task")
_AUTOCAST = (None, "bf16", "fp16")
_INTS = ("warmup_steps", "batch_size", "grad_accum_steps", "seed", "lora_rank", "eval_every", "eval_batch_size",
         "eval_max_new_tokens", "save_every", "log_every")
_OPTIONAL_INTS = ("steps", "keep_last")
_FLOATS = ("lr", "weight_decay", "eps", "min_lr_ratio", "epochs", "lora_alpha")
_OPTIONAL_FLOATS = ("max_grad_norm",)
_BOOLS = ("shuffle", "resume", "overwrite", "progress", "wandb")


# Not wrapped by run-time type checking: __post_init__ accepts JSON/TOML values (lists for tuples)
# and refuses bad ones with messages that name the field and the allowed values.
@no_type_check
@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters and run settings for :func:`rhlens.train`.

    Optimisation:
        lr: peak learning rate of AdamW.
        weight_decay, betas, eps: AdamW settings (decay applies to every trainable tensor).
        warmup_steps: linear warm-up from 0 to ``lr`` over this many optimizer steps.
        min_lr_ratio: cosine decay ends at ``lr * min_lr_ratio`` at the last step.
        max_grad_norm: clip the global gradient norm to this (``None``: no clipping).
        steps: optimizer steps; when ``None``, ``ceil(epochs * n_examples / batch_size)``.
        epochs: passes over the data when ``steps`` is ``None``.
        batch_size: examples per optimizer step, over all processes and accumulation steps.
        grad_accum_steps: micro-batches per process per optimizer step.
        seed: seeds the data order, LoRA initialisation and torch/python/numpy RNGs.
        shuffle: shuffle the examples each epoch (order depends only on ``seed`` and epoch).

    What trains:
        trainable: ``"all"`` parameters, only ``"attention"`` (Q/K/V/O weights and biases), or
            ``"lora"`` adapters on W_Q/W_K/W_V/W_O (merged into plain weights when saved).
        lora_rank, lora_alpha: adapter rank and scale (update = alpha / rank * A @ B).
        lora_targets: which of ``"q", "k", "v", "o"`` get adapters.

    Data:
        padding_side: ``"right"`` (default; causal attention alone then masks padding exactly)
            or ``"left"`` (an explicit attention mask; positions restart at each row's first token).
        truncation: ``None`` raises on an example longer than the model's context; ``"left"``
            drops tokens from the start so the end (question and answer) is kept.

    Evaluation, checkpoints, logging:
        eval_every: evaluate every N steps and at the end (0: only at the end; needs examples).
        eval_metric: ``"loss"`` (held-out answer loss) or ``"task"`` (``rhlens.evaluate`` score).
        eval_batch_size: batch size of the held-out loss / evaluation.
        eval_max_new_tokens: greedy decoding budget of ``eval_metric="task"``.
        save_every: checkpoint every N steps (0: only at the end). Needs ``out_dir``.
        keep_last: keep this many most recent checkpoints (``None``: keep all).
        resume: continue from the newest intact checkpoint in ``out_dir`` (same run only).
        overwrite: replace the run ``out_dir`` holds (its checkpoints and metrics log); without it
            a folder holding another run, or this run without ``resume``, is refused. With
            ``resume`` too: continue this run if the folder holds it, else replace what is there.
        progress: show a tqdm bar. log_every: steps between JSONL metric lines.
        wandb: log to Weights & Biases (``wandb_project``, ``run_name``); off by default.

    Speed:
        fused_attention: ``"auto"`` uses the SDPA path on a HookedTransformer that supports it
            with no hook attached; ``True`` requires it (also on a TransformerBridge); ``False``
            keeps the eager attention. A bridge trains eagerly under ``"auto"``: its SDPA path
            (``True``) is faster (a step of 16 examples of 128 tokens on the base: 0.59 s of CPU
            against 0.73 s eager), but its rounding through 150 Adam steps moved 4 of the smoke
            study's 1,585 numbers 1.5e-4 from TransformerLens 3's record (eager: within 1e-4).
        autocast: ``"bf16"``/``"fp16"`` mixed precision, ``None`` for the model's dtype.
        device: ``None`` keeps the model's device (``cuda:LOCAL_RANK`` under multi-GPU launches).

    >>> cfg = TrainConfig(lr=3e-4, steps=100, batch_size=8, trainable="lora", lora_rank=4)
    >>> cfg.micro_batch_size(world_size=2)
    4
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
    >>> TrainConfig(trainable="heads")
    Traceback (most recent call last):
    ValueError: TrainConfig.trainable='heads': use one of ('all', 'attention', 'lora')
    """

    lr: float = 1e-3
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    max_grad_norm: float | None = 1.0
    steps: int | None = None
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum_steps: int = 1
    seed: int = 0
    shuffle: bool = True

    trainable: Trainable = "all"
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_targets: tuple[str, ...] = ("q", "k", "v", "o")

    padding_side: Literal["left", "right"] = "right"
    truncation: Literal["left"] | None = None

    eval_every: int = 0
    eval_metric: Literal["loss", "task"] = "loss"
    eval_batch_size: int = 16
    eval_max_new_tokens: int = 32
    save_every: int = 0
    keep_last: int | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    log_every: int = 1
    wandb: bool = False
    wandb_project: str | None = None
    run_name: str | None = None

    fused_attention: bool | Literal["auto"] = "auto"
    autocast: Literal["bf16", "fp16"] | None = None
    device: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        self._check()

    def _check_types(self) -> None:
        """Raise ``TypeError`` naming the key for a value of the wrong kind: ``steps=2.5`` or
        ``steps=True`` would train 2 or 1 steps, ``lr="1e-3"`` fail later in the optimizer."""
        for name in _INTS + _OPTIONAL_INTS:
            value = getattr(self, name)
            if not (value is None and name in _OPTIONAL_INTS) and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
                raise TypeError(f"TrainConfig.{name}={value!r}: must be a whole number, got {type(value).__name__}")
        for name in _FLOATS + _OPTIONAL_FLOATS:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL_FLOATS:
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise TypeError(f"TrainConfig.{name}={value!r}: must be a finite number, got {type(value).__name__}")
        for name in _BOOLS:
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"TrainConfig.{name}={getattr(self, name)!r}: must be True or False")
        if len(self.betas) != 2 or any(isinstance(b, bool) or not isinstance(b, numbers.Real) for b in self.betas):
            raise TypeError(f"TrainConfig.betas={self.betas!r}: must be two numbers")

    def _check(self) -> None:
        def bad(name: str, why: str) -> ValueError:
            return ValueError(f"TrainConfig.{name}={getattr(self, name)!r}: {why}")

        self._check_types()
        if not self.lr > 0:
            raise bad("lr", "must be positive")
        if self.trainable not in TRAINABLE:
            raise bad("trainable", f"use one of {TRAINABLE}")
        if self.padding_side not in _PADDING:
            raise bad("padding_side", f"use one of {_PADDING}")
        if self.truncation not in _TRUNCATION:
            raise bad("truncation", "use None (error on long examples) or 'left' (keep the end)")
        if self.eval_metric not in _EVAL_METRICS:
            raise bad("eval_metric", f"use one of {_EVAL_METRICS}")
        if self.autocast not in _AUTOCAST:
            raise bad("autocast", f"use one of {_AUTOCAST}")
        if self.fused_attention not in (True, False, "auto"):
            raise bad("fused_attention", "use True, False or 'auto'")
        for name in ("batch_size", "grad_accum_steps", "lora_rank", "eval_batch_size", "eval_max_new_tokens", "log_every"):
            if int(getattr(self, name)) < 1:
                raise bad(name, "must be at least 1")
        for name in ("warmup_steps", "eval_every", "save_every"):
            if int(getattr(self, name)) < 0:
                raise bad(name, "must be 0 or more")
        if self.steps is not None and self.steps < 1:
            raise bad("steps", "must be at least 1 (or None to use epochs)")
        if self.steps is None and not self.epochs > 0:
            raise bad("epochs", "must be positive when steps is None")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise bad("min_lr_ratio", "must lie in [0, 1]")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise bad("max_grad_norm", "must be positive or None")
        if self.keep_last is not None and self.keep_last < 1:
            raise bad("keep_last", "must be at least 1 or None")
        unknown = set(self.lora_targets) - {"q", "k", "v", "o"}
        if unknown or not self.lora_targets:
            raise bad("lora_targets", "use a non-empty subset of ('q', 'k', 'v', 'o')")
        if self.batch_size % self.grad_accum_steps:
            raise bad("batch_size", f"must be a multiple of grad_accum_steps={self.grad_accum_steps}")

    # ---- derived values --------------------------------------------------------------------
    def micro_batch_size(self, world_size: int = 1) -> int:
        """Examples per forward pass on one process."""
        per_step = self.grad_accum_steps * world_size
        if self.batch_size % per_step:
            raise ValueError(
                f"TrainConfig.batch_size={self.batch_size} is not divisible by grad_accum_steps "
                f"({self.grad_accum_steps}) x processes ({world_size}); choose a batch size that is"
            )
        return self.batch_size // per_step

    def total_steps(self, n_examples: int) -> int:
        """Optimizer steps of the run for a training set of ``n_examples``."""
        if self.steps is not None:
            return int(self.steps)
        return max(1, math.ceil(self.epochs * n_examples / self.batch_size))

    # ---- (de)serialisation -----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (tuples become lists)."""
        out = asdict(self)
        out["betas"] = list(self.betas)
        out["lora_targets"] = list(self.lora_targets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "dict") -> "TrainConfig":
        """Build from a dict; unknown keys raise an error naming ``source`` and the key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(
                f"{source}: unknown TrainConfig key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{source}: {err}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "TrainConfig":
        """Load a ``.toml`` (keys at top level or under ``[train]``) or ``.json`` file."""
        path = Path(path)
        if path.suffix == ".toml":
            with path.open("rb") as fh:
                data = tomllib.load(fh)
            data = data.get("train", data)
        elif path.suffix == ".json":
            data = json.loads(path.read_text())
        else:
            raise ValueError(f"{path}: TrainConfig files must end in .toml or .json")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: expected a table of TrainConfig keys, got {type(data).__name__}")
        return cls.from_dict(data, source=str(path))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with ``changes`` applied (validated again)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})
