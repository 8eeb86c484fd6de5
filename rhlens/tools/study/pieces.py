"""The study's pieces on a user's own model folder and examples file: what ``rhlens scores``,
``rhlens knockout`` and ``rhlens patch`` run.

A model is a folder written by :func:`rhlens.save_model` or a local Hugging Face checkpoint folder
(:func:`rhlens.load_hf_checkpoint`); examples are a JSONL file of :class:`rhlens.Example` records
(:func:`rhlens.tasks.load_jsonl`). Each function writes JSON into ``out`` and returns the summary.
"""

from pathlib import Path
from typing import Any, Sequence

from rhlens.files import write_json_atomic
from rhlens.tools.study.analysis import retrieval_heads


def load_any_model(path: "str | Path", *, device: str = "cpu", dtype: str = "float32") -> Any:
    """An rhlens model folder or a Hugging Face checkpoint folder, by what the folder holds."""
    import torch

    from rhlens.models import load_hf_checkpoint, load_model

    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"model {folder} is not a folder; pass an rhlens.save_model folder or a Hugging Face checkpoint folder")
    if (folder / "rhlens_model.json").is_file():
        return load_model(folder, device=device)
    if (folder / "config.json").is_file():
        return load_hf_checkpoint(folder, dtype=getattr(torch, dtype), device=device)
    raise FileNotFoundError(f"model {folder} holds neither rhlens_model.json nor config.json; it is not a model folder")


def load_examples(path: "str | Path", n: int | None = None) -> list:
    """The first ``n`` (all when ``None``) examples of a JSONL file; an empty file is an error."""
    from rhlens.tasks import load_jsonl

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"examples file {path} does not exist")
    examples = load_jsonl(path)
    if not examples:
        raise ValueError(f"examples file {path} holds no example")
    return examples[:n] if n else examples


def load_scores(path: "str | Path") -> Any:
    """Head scores from ``HeadScores.save`` (``.safetensors``) or Wu et al.'s JSON (``.json``)."""
    from rhlens.scoring import HeadScores

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scores file {path} does not exist")
    return HeadScores.load(path) if path.suffix == ".safetensors" else HeadScores.from_wu_json(path)


def pick_heads(heads: str | None, scores: Any, *, threshold: float, top_k: int) -> Any:
    """``heads`` (``"L0H1,L1H3"``) or, from ``scores``, the retrieval heads (top-k over threshold)."""
    from rhlens.heads import HeadSet

    if heads:
        return HeadSet(h.strip() for h in heads.split(",") if h.strip())
    if scores is None:
        raise ValueError("name the heads with --heads L0H1,L1H3 or give --scores FILE to take the retrieval heads")
    return retrieval_heads(scores.scores, threshold=threshold, top_k=top_k)


def _check_heads(model: Any, heads: Any, what: str) -> None:
    n_layers, n_heads = int(model.cfg.n_layers), int(model.cfg.n_heads)
    bad = [str(h) for h in heads if not (0 <= h.layer < n_layers and 0 <= h.head < n_heads)]
    if bad:
        raise ValueError(f"{what} {', '.join(bad)} not in this model ({n_layers} layers x {n_heads} heads)")


def run_scores(model_dir: "str | Path", examples_file: "str | Path", out: Path, *,
               methods: Sequence[str] = ("decode",),
               n: int | None = None, max_new_tokens: int = 50, threshold: float = 0.1, batch_size: int = 8,
               device: str = "cpu", dtype: str = "float32", progress: bool = True,
               rouge_gate: float | None = 0.5) -> dict[str, Any]:
    """Retrieval scores of every head: ``scores.json``, ``<method>.safetensors``, ``<method>.wu.json``
    (Wu et al.'s format) and ``heatmap.html`` per method (``rouge_gate``: as in
    :func:`rhlens.retrieval_scores`)."""
    model = load_any_model(model_dir, device=device, dtype=dtype)
    examples = load_examples(examples_file, n)
    from rhlens import plot
    from rhlens.scoring import retrieval_scores

    summary: dict[str, Any] = {"model": str(model_dir), "examples": str(examples_file), "n_examples": len(examples),
                               "threshold": threshold, "methods": {}}
    figures = []
    for method in methods:
        scores = retrieval_scores(model, examples, method=method, max_new_tokens=max_new_tokens,
                                  batch_size=batch_size, progress=progress, rouge_gate=rouge_gate)
        scores.save(out / f"{method}.safetensors")
        write_json_atomic(out / f"{method}.wu.json", scores.to_wu_json(), indent=None)
        above = sorted(scores.above(threshold), key=lambda h: -float(scores.scores[h.layer, h.head]))
        summary["methods"][method] = {
            "n_counted": scores.n_counted,
            "retrieval_heads": {str(h): round(float(scores.scores[h.layer, h.head]), 4) for h in above},
            "scores": [[round(float(v), 6) for v in row] for row in scores.scores.tolist()],
        }
        figures.append((f"Retrieval scores ({method})", plot.head_heatmap(scores.scores, title=f"{model_dir}: {method}")))
    plot.write_html(figures, out / "heatmap.html", title="rhlens scores",
                    intro=f"Model {model_dir}, {len(examples)} examples from {examples_file}.")
    write_json_atomic(out / "scores.json", summary)
    return summary


def run_knockout(model_dir: "str | Path", examples_file: "str | Path", out: Path, *, heads: str | None = None,
                 scores_file: "str | Path | None" = None, top_k: int = 10, threshold: float = 0.1, mode: str = "zero",
                 n_random: int = 3, seed: int = 0,
                 n: int | None = None, max_new_tokens: int = 32, batch_size: int = 8, device: str = "cpu",
                 dtype: str = "float32", progress: bool = True) -> dict[str, Any]:
    """The metric intact, with the heads knocked out, and with as many random heads (``n_random``
    draws, none among the heads over ``threshold`` when scores are given): ``knockout.json``."""
    from rhlens.evaluation import RunOptions, evaluate
    from rhlens.interventions import knockout_effect, random_heads

    scores = load_scores(scores_file) if scores_file else None
    chosen = pick_heads(heads, scores, threshold=threshold, top_k=top_k)
    if not chosen:
        raise ValueError(f"no head to knock out: none of {scores_file} scores above {threshold}; lower --threshold or use --heads")
    model = load_any_model(model_dir, device=device, dtype=dtype)
    _check_heads(model, chosen, "--heads")
    examples = load_examples(examples_file, n)
    run = RunOptions(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    kw = dict(mode=mode, reference=examples if mode == "mean" else None, options=run)
    baseline = evaluate(model, examples, options=run)
    knocked = knockout_effect(model, examples, chosen, baseline=baseline, **kw)
    exclude = chosen | (scores.above(threshold) if scores is not None else chosen)
    if int(model.cfg.n_layers) * int(model.cfg.n_heads) - len(exclude) < len(chosen):
        exclude = chosen
    draws = []
    for i in range(n_random):
        control = random_heads(model, len(chosen), exclude=exclude, seed=seed + i)
        effect = knockout_effect(model, examples, control, baseline=baseline, **kw)
        draws.append({"heads": control.labels(), "score": effect.knocked.score, "delta": effect.delta})
    summary = {"model": str(model_dir), "examples": str(examples_file), "n_examples": len(examples), "mode": mode,
               "baseline": baseline.score, "heads": chosen.labels(), "knocked": knocked.knocked.score,
               "delta": knocked.delta, "random": draws,
               "random_mean": sum(d["score"] for d in draws) / len(draws) if draws else None}
    write_json_atomic(out / "knockout.json", summary)
    return summary


def run_patch(source_dir: "str | Path", target_dir: "str | Path", examples_file: "str | Path", out: Path, *,
              source_scores: "str | Path | None" = None, target_scores: "str | Path | None" = None,
              source_heads: str | None = None, target_heads: str | None = None,
              top_k: int = 10, threshold: float = 0.1, positions: str = "all", n_random: int = 2, seed: int = 0,
              n: int | None = None, max_new_tokens: int = 32, batch_size: int = 8, device: str = "cpu",
              dtype: str = "float32", progress: bool = True) -> dict[str, Any]:
    """The paper's patching table, source into target (original / intersection / complement /
    random rows): ``patching.json``."""
    from rhlens.evaluation import RunOptions
    from rhlens.interventions import patching_table

    src = pick_heads(source_heads, load_scores(source_scores) if source_scores else None, threshold=threshold, top_k=top_k)
    tgt = pick_heads(target_heads, load_scores(target_scores) if target_scores else None, threshold=threshold, top_k=top_k)
    if not src:
        raise ValueError(f"the source has no retrieval head above {threshold}; lower --threshold or use --source-heads")
    source = load_any_model(source_dir, device=device, dtype=dtype)
    target = load_any_model(target_dir, device=device, dtype=dtype)
    _check_heads(source, src, "source heads")
    _check_heads(target, tgt, "target heads")
    examples = load_examples(examples_file, n)
    table = patching_table(source, target, examples, src, tgt, k=None, positions=positions, n_random=n_random,
                           seed=seed, exclude=src | tgt,
                           options=RunOptions(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress))
    summary = {"source": str(source_dir), "target": str(target_dir), "examples": str(examples_file),
               "n_examples": len(examples), "positions": positions, "source_heads": src.labels(),
               "target_heads": tgt.labels(),
               "rows": {r.name: {"heads": r.heads.labels(), "score": r.score, "delta": r.delta, "draws": list(r.draws)}
                        for r in table.rows}}
    write_json_atomic(out / "patching.json", summary)
    return summary
