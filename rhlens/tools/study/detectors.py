"""Head detectors side by side on a user's model: what ``rhlens detectors`` and the study's
detectors stage run (:func:`run_detectors`).

:func:`rhlens.compare_detectors` gives every detector's scores and their agreement;
:func:`rhlens.knockout_curves` knocks out each detector's top-k heads against random-k. Files
written into ``out``: ``detectors.json`` (scores, agreement, curves), one
``<detector>.safetensors`` per detector, and ``detectors.html`` (the curves figure and one heatmap
per detector).
"""

from pathlib import Path
from typing import Any, Sequence

from rhlens.files import write_json_atomic


def detectors_summary(comparison: Any, curves: Any) -> dict[str, Any]:
    """JSON-ready: the comparison (:meth:`DetectorComparison.to_dict`), the curves
    (:meth:`KnockoutCurves.to_dict`) and each detector's drop at every k against the random mean."""
    drops = {name: [round(float(v), 6) for v in curves.drop(name)] for name in curves.curves}
    return {**comparison.to_dict(), "knockout": curves.to_dict(), "drop": drops,
            "random_drop": [round(float(v), 6) for v in curves.random_drop()]}


def run_detectors(
    model: Any, examples: Sequence[Any], out: Path, *, detectors: Sequence[str], ks: Sequence[int] = (1, 2, 3, 5, 8),
    n_random: int = 3, n_boot: int = 200, seed: int = 0, max_new_tokens: int = 32, batch_size: int = 8,
    progress: bool = True, title: str = "rhlens detectors",
) -> dict[str, Any]:
    """Compare ``detectors`` on ``model`` and ``examples``, knock out each one's top-k heads, and
    write the files of the module docstring into ``out``; returns the summary."""
    from rhlens import plot
    from rhlens.interventions import knockout_curves
    from rhlens.scoring import compare_detectors

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cmp = compare_detectors(model, examples, detectors=detectors, n_boot=n_boot, seed=seed,
                            max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    curves = knockout_curves(model, examples, cmp.scores, ks=ks, n_random=n_random, seed=seed, batch_size=batch_size,
                             progress=progress)
    for name, hs in cmp.scores.items():
        hs.save(out / f"{name}.safetensors")
    summary = detectors_summary(cmp, curves)
    write_json_atomic(out / "detectors.json", summary)
    figures = [("Knockout curves", plot.knockout_curves_figure(curves))]
    figures += [(f"{name} scores", plot.head_heatmap(hs.scores, title=name)) for name, hs in cmp.scores.items()]
    plot.write_html(figures, out / "detectors.html", title=title, intro=f"{len(examples)} examples; detectors {', '.join(cmp.scores)}.")
    return summary
