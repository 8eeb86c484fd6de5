"""The study's pieces on a user's own model folder and examples file: what ``rhlens scores``,
``rhlens knockout`` and ``rhlens patch`` run.

A model is a folder written by :func:`rhlens.save_model` or a local Hugging Face checkpoint folder
(:func:`rhlens.load_hf_checkpoint`); examples are a JSONL file of :class:`rhlens.Example` records
(:func:`rhlens.tasks.load_jsonl`). Each function writes JSON into ``out`` and returns the summary.
"""

from pathlib import Path
from typing import Any, Callable, Sequence

from rhlens.files import write_json_atomic
from rhlens.models.folder import load_folder
from rhlens.tools.study.analysis import retrieval_heads


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
    """``ValueError`` naming every head of ``heads`` outside ``model`` (before any run)."""
    from rhlens.interventions.head_sets import heads_by_layer

    heads_by_layer(model, heads, what=what)


def save_method_scores(model: Any, examples: Sequence[Any], methods: Sequence[str], *,
                       files_of: Callable[[str], tuple[str, str]], path_of: Callable[[str], Path],
                       threshold: float, top_k: int | None = None,
                       **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Retrieval scores of every head by each of ``methods`` (:func:`rhlens.retrieval_scores` with
    ``options``: ``max_new_tokens``, ``batch_size``, ``progress``, ``rouge_gate``, ``gate``, ``rule``), each saved as
    the relative paths ``files_of(method) -> (scores .safetensors, Wu et al.'s .wu.json)`` under
    ``path_of(relative) -> Path``; what ``rhlens scores`` and the study's scores stage both write.

    Returns ``(records, scores)``: per method, a JSON record (the score grid, ``n_counted``,
    ``n_examples``, ``n_above_threshold``, ``retrieval_heads``: at most ``top_k`` (all when
    ``None``) heads over ``threshold``, best first, ``head_scores`` of those, ``files``) and the
    :class:`rhlens.HeadScores`.
    """
    from rhlens.scoring import retrieval_scores

    records: dict[str, Any] = {}
    results: dict[str, Any] = {}
    for method in methods:
        scores = retrieval_scores(model, examples, method=method, **options)
        files = dict(zip(("scores", "wu_json"), files_of(method), strict=True))
        scores.save(path_of(files["scores"]))
        write_json_atomic(path_of(files["wu_json"]), scores.to_wu_json(), indent=None)
        above = scores.above(threshold)
        heads = retrieval_heads(scores.scores, threshold=threshold, top_k=len(above) if top_k is None else top_k)
        best = sorted(heads, key=lambda h: (-float(scores.scores[h.layer, h.head]), h))
        records[method] = {
            "scores": [[round(float(v), 6) for v in row] for row in scores.scores.tolist()],
            "n_counted": scores.n_counted, "n_examples": scores.n_examples, "n_above_threshold": len(above),
            "retrieval_heads": [str(h) for h in best],
            "head_scores": {str(h): round(float(scores.scores[h.layer, h.head]), 4) for h in best},
            "files": files,
        }
        results[method] = scores
    return records, results


def run_scores(model_dir: "str | Path", examples_file: "str | Path", out: Path, *,
               methods: Sequence[str] = ("decode",),
               n: int | None = None, max_new_tokens: int = 50, threshold: float = 0.1, batch_size: int = 8,
               device: str = "cpu", dtype: str = "float32", progress: bool = True,
               rouge_gate: float | None = 0.5, gate: str = "rouge", rule: str = "rhlens") -> dict[str, Any]:
    """Retrieval scores of every head: ``scores.json``, ``<method>.safetensors``, ``<method>.wu.json``
    (Wu et al.'s format) and ``heatmap.html`` per method (``rouge_gate``, ``gate``, ``rule``: as in
    :func:`rhlens.retrieval_scores`)."""
    model = load_folder(model_dir, device=device, dtype=dtype)
    examples = load_examples(examples_file, n)
    from rhlens import plot

    records, results = save_method_scores(model, examples, methods,
                                          files_of=lambda m: (f"{m}.safetensors", f"{m}.wu.json"),
                                          path_of=lambda rel: out / rel, threshold=threshold,
                                          max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress,
                                          rouge_gate=rouge_gate, gate=gate, rule=rule)
    summary: dict[str, Any] = {"model": str(model_dir), "examples": str(examples_file), "n_examples": len(examples),
                               "threshold": threshold, "rule": rule, "gate": gate, "methods": records}
    figures = [(f"Retrieval scores ({method})", plot.head_heatmap(scores.scores, title=f"{model_dir}: {method}"))
               for method, scores in results.items()]
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
    draws, none among the heads over ``threshold`` when scores are given: the rule of
    :func:`rhlens.interventions.head_sets.control_exclusion`): ``knockout.json``."""
    from rhlens.evaluation import RunOptions
    from rhlens.interventions import knockout_effect

    scores = load_scores(scores_file) if scores_file else None
    chosen = pick_heads(heads, scores, threshold=threshold, top_k=top_k)
    if not chosen:
        raise ValueError(f"no head to knock out: none of {scores_file} scores above {threshold}; lower --threshold or use --heads")
    model = load_folder(model_dir, device=device, dtype=dtype)
    _check_heads(model, chosen, "--heads")
    examples = load_examples(examples_file, n)
    run = RunOptions(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    knocked = knockout_effect(model, examples, chosen, mode=mode, reference=examples if mode == "mean" else None,
                              n_random=n_random, scores=scores, exclude=() if scores is None else None,
                              threshold=threshold, seed=seed, options=run)
    base = knocked.baseline.score
    draws = [{"heads": heads.labels(), "score": c.score, "delta": c.score - base}
             for heads, c in zip(knocked.control_heads, knocked.controls, strict=True)]
    summary = {"model": str(model_dir), "examples": str(examples_file), "n_examples": len(examples), "mode": mode,
               "baseline": base, "heads": chosen.labels(), "knocked": knocked.knocked.score,
               "delta": knocked.delta, "random": draws, "random_excluded": knocked.control_excluded.labels(),
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
    random rows; the random rows avoid both head sets and, when scores are given, every head over
    ``threshold``: :func:`rhlens.interventions.head_sets.control_exclusion`): ``patching.json``."""
    from rhlens.adapter import architecture
    from rhlens.evaluation import RunOptions
    from rhlens.interventions import patching_table
    from rhlens.interventions.head_sets import control_exclusion

    grids = [load_scores(f) if f else None for f in (source_scores, target_scores)]
    src = pick_heads(source_heads, grids[0], threshold=threshold, top_k=top_k)
    tgt = pick_heads(target_heads, grids[1], threshold=threshold, top_k=top_k)
    if not src:
        raise ValueError(f"the source has no retrieval head above {threshold}; lower --threshold or use --source-heads")
    source = load_folder(source_dir, device=device, dtype=dtype)
    target = load_folder(target_dir, device=device, dtype=dtype)
    _check_heads(source, src, "source heads")
    _check_heads(target, tgt, "target heads")
    examples = load_examples(examples_file, n)
    scored = [g for g in grids if g is not None]
    arch = architecture(target)
    exclude = control_exclusion(src | tgt, exclude=None if scored else (), scores=scored, threshold=threshold,
                                n_total=arch.n_layers * arch.n_heads, what="rhlens patch")
    table = patching_table(source, target, examples, src, tgt, k=None, positions=positions, n_random=n_random,
                           seed=seed, exclude=exclude,
                           options=RunOptions(max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress))
    summary = {"source": str(source_dir), "target": str(target_dir), "examples": str(examples_file),
               "n_examples": len(examples), "positions": positions, "source_heads": src.labels(),
               "target_heads": tgt.labels(), "random_excluded": exclude.labels(),
               "rows": {r.name: {"heads": r.heads.labels(), "score": r.score, "delta": r.delta, "draws": list(r.draws)}
                        for r in table.rows}}
    write_json_atomic(out / "patching.json", summary)
    return summary
