"""rhlens: retrieval heads explain synthetic long-context fine-tuning.

The public API. Names load lazily, so ``import rhlens`` is fast and the task layer works without
importing torch.

>>> import rhlens
>>> rhlens.Head.parse("L4H4")
Head(layer=4, head=4)
"""

from typing import TYPE_CHECKING

from rhlens._lazy import lazy_exports as _lazy_exports
from rhlens.version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # heads
    "Head": "rhlens.heads",
    "HeadSet": "rhlens.heads",
    # tasks (layer 1)
    "Example": "rhlens.tasks",
    "generate": "rhlens.tasks",
    "niah_grid": "rhlens.tasks",
    "TASKS": "rhlens.tasks",
    "VARIANTS": "rhlens.tasks",
    # models (layer 2)
    "tiny_llama": "rhlens.models",
    "tiny_gpt2": "rhlens.models",
    "word_level_tokenizer": "rhlens.models",
    "default_tokenizer": "rhlens.models",
    "load_hf_checkpoint": "rhlens.models",
    "load_bridge": "rhlens.models",
    "as_bridge": "rhlens.models",
    "save_model": "rhlens.models",
    "load_model": "rhlens.models",
    "load_base": "rhlens.models",
    # encoding and decoding
    "encode_example": "rhlens.encoding",
    "greedy_decode": "rhlens.decoding",
    # analyzers (layer 4)
    "retrieval_scores": "rhlens.scoring",
    "HeadScores": "rhlens.scoring",
    "compare_detectors": "rhlens.scoring",
    "DetectorComparison": "rhlens.scoring",
    "evaluate": "rhlens.evaluation",
    "EvalResult": "rhlens.evaluation",
    "RunOptions": "rhlens.evaluation",
    "knockout": "rhlens.interventions",
    "knockout_effect": "rhlens.interventions",
    "KnockoutEffect": "rhlens.interventions",
    "random_heads": "rhlens.interventions",
    "knockout_curves": "rhlens.interventions",
    "KnockoutCurves": "rhlens.interventions",
    "block_attention": "rhlens.interventions",
    "check_compatible": "rhlens.interventions",
    "IncompatibleModelsError": "rhlens.interventions",
    "patch_heads": "rhlens.interventions",
    "PatchResult": "rhlens.interventions",
    "patching_table": "rhlens.interventions",
    "PatchingTable": "rhlens.interventions",
    "patch_sweep": "rhlens.interventions",
    "attribution_sweep": "rhlens.interventions",
    "run_sharded": "rhlens.distributed_eval",
    "PatchSweep": "rhlens.interventions",
    "AttributionSweep": "rhlens.interventions",
    # training (layer 5)
    "train": "rhlens.training",
    "TrainConfig": "rhlens.training",
    "TrainResult": "rhlens.training",
    "NonFiniteLossError": "rhlens.training",
    "extend_context": "rhlens.training",
    "pretrain_base": "rhlens.tools.pretrain",
    # the study (layer 6)
    "Study": "rhlens.tools.study",
    "StudyConfig": "rhlens.tools.study",
}

__all__ = sorted([*_EXPORTS, "__version__"])

if TYPE_CHECKING:  # the same names, visible to type checkers and IDEs (loaded lazily at run time)
    from rhlens.distributed_eval import run_sharded
    from rhlens.encoding import encode_example
    from rhlens.evaluation import EvalResult, RunOptions, evaluate
    from rhlens.decoding import greedy_decode
    from rhlens.heads import Head, HeadSet
    from rhlens.interventions import (
        AttributionSweep,
        IncompatibleModelsError,
        KnockoutCurves,
        KnockoutEffect,
        PatchResult,
        PatchSweep,
        PatchingTable,
        attribution_sweep,
        block_attention,
        check_compatible,
        knockout,
        knockout_curves,
        knockout_effect,
        patch_heads,
        patch_sweep,
        patching_table,
        random_heads,
    )
    from rhlens.models import (
        as_bridge,
        default_tokenizer,
        load_base,
        load_bridge,
        load_hf_checkpoint,
        load_model,
        save_model,
        tiny_gpt2,
        tiny_llama,
        word_level_tokenizer,
    )
    from rhlens.tools.pretrain import pretrain_base
    from rhlens.scoring import DetectorComparison, HeadScores, compare_detectors, retrieval_scores
    from rhlens.tools.study import Study, StudyConfig
    from rhlens.tasks import Example, TASKS, VARIANTS, generate, niah_grid
    from rhlens.training import NonFiniteLossError, TrainConfig, TrainResult, extend_context, train

_export, _exports_dir = _lazy_exports(__name__, _EXPORTS, globals())
#: subpackages reachable as attributes after a bare ``import rhlens`` (``rhlens.models.base_card()``)
_SUBMODULES = ("models", "tasks", "plot", "scoring", "interventions", "training", "evaluation", "heads", "tools")


def __getattr__(name: str):  # noqa: ANN202 - whatever the name is
    """A public name (loaded on first use), or one of :data:`_SUBMODULES`.

    >>> import rhlens
    >>> rhlens.models.base_card().splitlines()[0]
    '# rhlens-base'
    """
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    return _export(name)


def __dir__() -> list[str]:
    return sorted({*_exports_dir(), *_SUBMODULES})
