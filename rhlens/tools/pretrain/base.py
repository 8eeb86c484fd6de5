"""Pretrain the embedded base model: a tiny Llama that already copies from context.

:func:`pretrain_base` runs a :class:`~rhlens.tools.pretrain.recipe.Recipe` stage by stage with
:func:`rhlens.train`: first next-token loss on induction text (spans that recur), then the
tasks' question-and-answer forms, over a curriculum of context lengths. Every stage checkpoints
into ``out_dir/stages/<name>``; a finished stage leaves ``out_dir/stages/<name>/model``, so
``resume=True`` skips finished stages and continues the unfinished one from its last
checkpoint. The result goes to ``out_dir/model`` (a :func:`rhlens.models.save_model` folder)
with ``training_log.jsonl``, ``abilities.json``, ``recipe.json`` and ``CARD.md``.

The run is deterministic for a recipe on one machine type (CPU float32): re-running it
reproduces the weights to float tolerance.
"""

import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rhlens.adapter import Model, embedding_matrix, set_unembed
from rhlens.encoding import pad_id_of
from rhlens.files import write_text_atomic
from rhlens.tools.pretrain.data import stage_examples
from rhlens.tools.pretrain.cues import CUES
from rhlens.tools.pretrain.supervision import supervise_attention
from rhlens.tools.pretrain.recipe import Recipe, default_recipe_path, load_recipe

MODEL_DIR = "model"


@dataclass
class PretrainResult:
    """What :func:`pretrain_base` made: the model, where it was saved, its measured abilities."""

    model: Model
    model_dir: Path
    abilities: dict[str, float]
    seconds: float
    steps: int


def build_base_model(recipe: Recipe) -> Any:
    """The untrained base: :func:`rhlens.tiny_llama` with the recipe's model overrides.

    The extra key ``init_unembed_from_embed = true`` starts the unembedding as the transposed
    embedding.
    """
    from rhlens.models import tiny_llama

    overrides = dict(recipe.model)
    tie_init = bool(overrides.pop("init_unembed_from_embed", False))
    overrides.setdefault("seed", recipe.seed)
    model = tiny_llama(**overrides)
    if tie_init:
        # W_U = W_E^T at initialisation (not tied afterwards): copying a token then needs no
        # per-token learning of the unembedding, and induction heads form within a few hundred
        # steps instead of not at all in the same budget (measured on this task world).
        set_unembed(model, embedding_matrix(model).T)
    return model


def measure_abilities(model: Model, *, context_tokens: int, n: int = 50, seed: int = 12345) -> dict[str, float]:
    """Exact match on fresh ``kv`` (symbolic and realistic) and realistic ``mdqa`` examples."""
    from rhlens.evaluation import evaluate
    from rhlens.tasks import generate

    out = {}
    for task, variant in (("kv", "symbolic"), ("kv", "realistic"), ("mdqa", "realistic")):
        examples = generate(task, variant, n, context_tokens=context_tokens, seed=seed)
        out[f"{task}/{variant}@{context_tokens}"] = float(evaluate(model, examples, progress=False).score)
    return out


def confined(path: Path, run_dir: Path) -> Path:
    """``path`` if it lies inside ``run_dir`` (after resolving ``..`` and links); an error otherwise.

    >>> confined(Path("runs/a/stages/x"), Path("runs/a")).name
    'x'
    """
    root = run_dir.resolve()
    resolved = path.resolve()
    if resolved != root and root not in resolved.parents:
        raise ValueError(f"{path} lies outside the run folder {run_dir}; stage names must be plain folder names")
    return path


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, list) and data and all(isinstance(x, dict) and "name" in x for x in data):
        return _flatten({str(x["name"]): x for x in data}, prefix)
    return {prefix: data}


def recipe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two ``Recipe.to_dict()`` records (stages by name).

    >>> recipe_differences({"seed": 0, "stages": [{"name": "a", "n_examples": 4}]},
    ...                    {"seed": 0, "stages": [{"name": "a", "n_examples": 8}]})
    ['stages.a.n_examples']
    """
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if a.get(k, "<absent>") != b.get(k, "<absent>"))


def check_same_recipe(recipe: Recipe, recipe_file: Path) -> None:
    """Refuse to continue a run folder whose ``recipe.json`` records another recipe: its finished
    stages were trained with other values, and its card would misdescribe the model."""
    if not recipe_file.is_file():
        return
    try:
        old = json.loads(recipe_file.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{recipe_file} is unreadable ({err}); it records the run's recipe, so the run cannot be resumed") from None
    diff = recipe_differences(old, json.loads(json.dumps(recipe.to_dict())))
    if diff:
        shown = ", ".join(diff[:12]) + (f" and {len(diff) - 12} more" if len(diff) > 12 else "")
        raise ValueError(
            f"{recipe_file.parent} was trained with another recipe (differing keys: {shown}); "
            "resume it with the recipe in its recipe.json, or train the new recipe into a new folder"
        )


def check_out_dir(out_dir: Path, *, resume: bool) -> None:
    """Refuse ``out_dir`` before any work when it is a file, cannot be written, holds files but no
    pretraining run (no ``recipe.json``: nothing of it is replaced), or holds a run and ``resume``
    is off."""
    from rhlens.tools.study.folder import check_can_create

    check_can_create(out_dir)
    entries = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else []
    if entries and not (out_dir / "recipe.json").is_file():
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise FileExistsError(
            f"--out {out_dir} is not empty ({shown}) and holds no pretraining run (no recipe.json); "
            "nothing in it is replaced: use a new or empty folder"
        )
    stages_dir = out_dir / "stages"
    if stages_dir.exists() and any(stages_dir.iterdir()) and not resume:
        raise FileExistsError(f"{out_dir} already holds a pretraining run; pass resume=True (--resume) or use a new folder")


def pretrain_base(
    recipe: Recipe | str | Path | None = None,
    out_dir: str | Path = "runs/base",
    *,
    resume: bool = False,
    progress: bool = True,
) -> PretrainResult:
    """Train the base model of ``recipe`` (default: rhlens's own) into ``out_dir``.

    Args:
        recipe: a :class:`Recipe`, a path to a recipe TOML, or ``None`` for
            :func:`default_recipe_path`.
        out_dir: run folder (stage checkpoints, logs, the final model).
        resume: continue an interrupted run in ``out_dir``; without it an ``out_dir`` that
            already holds stages is an error (nothing is overwritten silently).
        progress: tqdm bars.

    The shipped recipe takes a while; a one-stage recipe with a 1-layer model and 2 steps shows
    what a run leaves behind:

    >>> import os, tempfile
    >>> from rhlens.tools.pretrain.recipe import recipe_from_dict
    >>> recipe = recipe_from_dict({
    ...     "model": {"n_layers": 1, "d_model": 32, "n_heads": 2, "d_mlp": 64},
    ...     "eval": {"n": 2, "context_tokens": 64},
    ...     "stages": [{"name": "qa-64", "context_tokens": 64, "n_examples": 8, "mix": {"qa": 1.0},
    ...                 "train": {"steps": 2, "batch_size": 4, "progress": False}}]})
    >>> out = tempfile.mkdtemp()
    >>> result = pretrain_base(recipe, out, progress=False)
    >>> result.steps, result.model.cfg.n_layers, sorted(os.listdir(out))
    (2, 1, ['CARD.md', 'abilities.json', 'model', 'recipe.json', 'stages', 'training_log.jsonl'])
    >>> sorted(result.abilities)
    ['kv/realistic@64', 'kv/symbolic@64', 'mdqa/realistic@64']
    >>> pretrain_base(recipe, out, progress=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    FileExistsError: ... already holds a pretraining run; pass resume=True (--resume) or use a new folder
    """
    from dataclasses import replace

    from rhlens.models import load_model, save_model
    from rhlens.training import train

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe if recipe is not None else default_recipe_path())
    out_dir = Path(out_dir)
    stages_dir = out_dir / "stages"
    check_out_dir(out_dir, resume=resume)
    check_same_recipe(recipe, out_dir / "recipe.json")
    stage_dirs = {stage.name: confined(stages_dir / stage.name, out_dir) for stage in recipe.stages}
    stages_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out_dir / "recipe.json", json.dumps(recipe.to_dict(), indent=2))

    start = time.perf_counter()
    model = build_base_model(recipe)
    torch.manual_seed(recipe.seed)
    total_steps = 0
    log_lines: list[str] = []
    for k, stage in enumerate(recipe.stages):
        stage_dir = stage_dirs[stage.name]
        done_dir = stage_dir / MODEL_DIR
        if done_dir.is_dir():
            model = load_model(done_dir)
        else:
            examples = stage_examples(
                n=stage.n_examples, context_tokens=stage.context_tokens, mix=stage.mix,
                seed=recipe.seed * 1000 + k, tasks=stage.tasks,
            )
            config = replace(stage.train, resume=resume, progress=progress and stage.train.progress)
            if stage.supervision is None:
                train(model, examples, config, out_dir=stage_dir)
            else:
                with supervise_attention(model, stage.supervision, pad_id=pad_id_of(model.tokenizer)) as extra_loss:
                    train(model, examples, config, out_dir=stage_dir, extra_loss=extra_loss)
            save_model(model, done_dir)
        total_steps += stage.train.total_steps(stage.n_examples)
        log_path = stage_dir / "metrics.jsonl"
        if log_path.is_file():
            for line in log_path.read_text().splitlines():
                if line.strip():
                    log_lines.append(json.dumps({"stage": stage.name, **json.loads(line)}))
    seconds = time.perf_counter() - start
    model_dir = out_dir / MODEL_DIR
    if recipe.model_format == "hf":
        from rhlens.models.bridge import save_hf_checkpoint
        from rhlens.models.folder import load_folder

        stored = getattr(torch, recipe.storage_dtype)
        save_hf_checkpoint(model, model_dir, dtype=None if stored == torch.float32 else stored)
        model = load_folder(model_dir)  # what users load: the stored weights, as float32
    else:
        save_model(model, model_dir)
        if recipe.storage_dtype != "float32":
            store_weights_as(model_dir, getattr(torch, recipe.storage_dtype))
            model = load_model(model_dir)  # what users load: the stored weights, as float32
    ctx = int(recipe.eval.get("context_tokens", recipe.stages[-1].context_tokens))
    abilities = measure_abilities(model, context_tokens=ctx, n=int(recipe.eval.get("n", 50)))
    write_text_atomic(out_dir / "training_log.jsonl", "\n".join(log_lines) + "\n")
    write_text_atomic(out_dir / "abilities.json", json.dumps(abilities, indent=2))
    write_text_atomic(out_dir / "CARD.md", model_card(recipe, abilities, steps=total_steps, seconds=seconds, model=model))
    return PretrainResult(model=model, model_dir=model_dir, abilities=abilities, seconds=seconds, steps=total_steps)


def store_weights_as(model_dir: Path, dtype: torch.dtype) -> None:
    """Rewrite a :func:`rhlens.models.save_model` folder's floating-point weights in ``dtype``
    (the config keeps float32, so :func:`rhlens.models.load_model` loads them as float32)."""
    from safetensors.torch import load_file, save_file

    from rhlens.files import atomic_path
    from rhlens.models.io import WEIGHTS_FILE

    path = model_dir / WEIGHTS_FILE
    state = {k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in load_file(str(path)).items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp))


def model_card(recipe: Recipe, abilities: dict[str, float], *, steps: int, seconds: float, model: Model) -> str:
    """A short Markdown card: data recipe, seed, steps, time, what the model can and cannot do."""
    n_params = sum(p.numel() for p in model.parameters())
    cfg = model.cfg
    stages = "\n".join(
        f"| {s.name} | {s.context_tokens} | {s.n_examples} | "
        f"{', '.join(f'{k} {v:g}' for k, v in s.mix.items())} | {s.train.total_steps(s.n_examples)} | {s.train.lr:g} | "
        f"{s.supervision.describe() if s.supervision else '-'} |"
        for s in recipe.stages
    )
    skills = "\n".join(f"| {k} | {v:.2f} |" for k, v in abilities.items())
    return f"""# {recipe.name}

A tiny Llama-shaped model that rhlens trains itself, so that fine-tuning on each task variant takes
minutes on a laptop CPU. It is the embedded default of `rhlens.models.load_base()`.

- Architecture: {cfg.n_layers} layers, {cfg.n_heads} heads of size {cfg.d_head}, d_model {cfg.d_model},
  d_mlp {cfg.d_mlp}, rotary positions (base {cfg.rotary_base:g}), RMSNorm, gated SiLU MLP,
  context {cfg.n_ctx}, word-level vocabulary of {cfg.d_vocab} tokens ({n_params:,} parameters).
- Seed {recipe.seed}; {steps} optimizer steps; {seconds / 60:.1f} minutes on {platform.machine()} CPU
  (torch {torch.__version__}, {torch.get_num_threads()} thread(s)). Weights stored as {recipe.storage_dtype}
  (loaded as float32).
- Recipe: `rhlens/recipes/base.toml`; reproduce with `rhlens pretrain-base --config <that file> --out DIR`.

## Data curriculum

| stage | context tokens | examples | mix | steps | lr | attention supervision |
|---|---|---|---|---|---|---|
{stages}

`repeat`: a random segment that recurs at random offsets among random words, and `induction`:
random words with recurring short spans (both next-token loss on all of the text); `lm`: task
prompts with answers as plain text (next-token loss on all of it); `qa`: task examples with the
loss on the answer only. Attention supervision (`rhlens.tools.pretrain.supervision`) adds a loss pulling
the previous-token heads' attention to the previous token and the retrieval heads' attention to
where the next token can be copied from (the token after the current token's previous occurrence;
in a question-answer example, the prompt positions holding the answer token), optionally trains
the supervised heads' value/output circuits to copy the token they read, and pushes every other
head's attention off the retrieval targets.
{_design(recipe)}
## What it can do (exact match on fresh examples)

| task | exact match |
|---|---|
{skills}

## What it cannot do

- It knows only the words of `rhlens.tasks.vocabulary()`; any other word is `<unk>`.
- It was trained at contexts up to {max(s.context_tokens for s in recipe.stages)} tokens: longer
  contexts need fine-tuning (and `rhlens.extend_context` beyond {cfg.n_ctx}).
- It is not a language model of English: its world is the generators' templates, names and symbols.
- Its retrieval is learned from the tasks' question-and-answer forms; `bench/bench_base.py` measures
  whether it also has a general (content-based) induction head on repeated random words.
"""


def _design(recipe: Recipe) -> str:
    sups = [s.supervision for s in recipe.stages if s.supervision is not None]
    if not sups or not any(s.anti_weight for s in sups):
        return ""
    sup = sups[-1]
    return f"""
## Design: engineered sparse retrieval

In the large models rhlens stands in for, retrieval heads are sparse (Wu et al.: under 5% of
heads). Left alone, a tiny model spreads copying over most heads of a layer, so knocking out a
few changes nothing while random heads break the circuit. This model's sparsity is engineered by
the supervision above: only {', '.join(map(str, sup.retrieval_heads + sup.cue_head_set))} are trained to attend to
copy targets, every other head is pushed off them, and the previous-token half of the circuit is
spread over {len(sup.previous_token_heads)} redundant heads ({', '.join(map(str, sup.previous_token_heads))}).
{_cue_design(sup)}"""


def _cue_design(sup: Any) -> str:
    if not sup.cue_heads:
        return ""
    table = "\n".join(f"| {cue} | {' '.join(map(str, heads))} | {', '.join(CUES[cue][:4])}, ... |" for cue, heads in sup.cue_heads)
    reach = (f" An answer more than {sup.reach} tokens back pulls no head and pushes every head off it, so the "
             f"base's retrieval reaches back at most {sup.reach} tokens: latent beyond, until a fine-tune at a "
             "longer context extends the heads its data uses.") if sup.reach else ""
    return f"""
### Cue-keyed retrieval heads

At an answer only the heads of the row's cues (read from the answer's first token,
`rhlens.tools.pretrain.cues`) are pulled to it; every other head, {', '.join(map(str, sup.retrieval_heads))} too, is pushed off,
so each head retrieves one kind of answer and a training set trains the heads of its own cues.{reach}

| cue | heads | answers like |
|---|---|---|
{table}
"""


def load_base_from(run_dir: str | Path) -> Any:
    """The model a :func:`pretrain_base` run saved in ``run_dir`` (either model format)."""
    from rhlens.models.folder import load_folder

    path = Path(run_dir) / MODEL_DIR
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist: {run_dir} holds no finished pretraining run")
    return load_folder(path)
