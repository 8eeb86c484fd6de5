"""Causal interventions on attention heads: knockout, attention-edge blocking, cross-model patching.

Modules, one job each:

- :mod:`~rhlens.interventions.ablation`: :func:`knockout` (zero / mean / uniform), :func:`random_heads`,
  :func:`knockout_effect`.
- :mod:`~rhlens.interventions.curves`: :func:`knockout_curves` (each detector's top-k heads out, graded,
  against random-k).
- :mod:`~rhlens.interventions.blocking`: :func:`block_attention` (Geva et al.'s attention knockout).
- :mod:`~rhlens.interventions.compatibility`: :func:`check_compatible` (may two models be patched?).
- :mod:`~rhlens.interventions.patching`: :func:`patch_heads` (source head outputs into a target).
- :mod:`~rhlens.interventions.sweep`: :func:`patch_sweep` (every head alone, batched per layer).
- :mod:`~rhlens.interventions.attribution`: :func:`attribution_sweep` (every head at once, first order);
  :mod:`~rhlens.interventions.attribution_graddrop`: AtP*'s gradient dropout for it.
- :mod:`~rhlens.interventions.table`: :func:`patching_table` (intersection / complement / random).
- :mod:`~rhlens.interventions.results`: the result objects (one before/after shape,
  :class:`~rhlens.interventions.results.BeforeAfter`).
- :mod:`~rhlens.interventions.head_sets`: which heads (grouped by layer, random-control exclusion);
  :mod:`~rhlens.interventions.head_outputs`: the ``hook_z`` read/write hooks.

Every analyzer that evaluates takes the same run options (:class:`rhlens.evaluation.RunOptions`,
as ``options=`` or as keywords: ``metric``, ``max_new_tokens``, ``batch_size``, ``chunk_size``,
``progress``), and an intact run to reuse as ``baseline=``.

All run on :mod:`rhlens.engine` (directly or through :func:`rhlens.evaluate`), so an
intervention and its baseline run the same code and kernels. Names load lazily.
"""

from rhlens._lazy import lazy_exports as _lazy_exports

_EXPORTS: dict[str, str] = {
    "knockout": "rhlens.interventions.ablation",
    "random_heads": "rhlens.interventions.ablation",
    "knockout_effect": "rhlens.interventions.ablation",
    "knockout_curves": "rhlens.interventions.curves",
    "KnockoutCurves": "rhlens.interventions.curves",
    "mean_head_outputs": "rhlens.interventions.ablation",
    "block_attention": "rhlens.interventions.blocking",
    "check_compatible": "rhlens.interventions.compatibility",
    "IncompatibleModelsError": "rhlens.interventions.compatibility",
    "patch_heads": "rhlens.interventions.patching",
    "patch_sweep": "rhlens.interventions.sweep",
    "attribution_sweep": "rhlens.interventions.attribution",
    "patching_table": "rhlens.interventions.table",
    "EvalResult": "rhlens.evaluation",
    "RunOptions": "rhlens.evaluation",
    "BeforeAfter": "rhlens.interventions.results",
    "KnockoutEffect": "rhlens.interventions.results",
    "PatchResult": "rhlens.interventions.results",
    "PatchingRow": "rhlens.interventions.results",
    "PatchingTable": "rhlens.interventions.results",
    "PatchSweep": "rhlens.interventions.results",
    "AttributionSweep": "rhlens.interventions.attribution",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
