"""Pretraining rhlens's embedded base model (``rhlens pretrain-base``).

- :mod:`rhlens.tools.pretrain.data`: induction text, task text and QA examples for the curriculum.
- :mod:`rhlens.tools.pretrain.recipe`: the recipe file (model config + stages).
- :mod:`rhlens.tools.pretrain.base`: :func:`pretrain_base`, the stage runner with resume.
"""

from rhlens.tools.pretrain.base import PretrainResult, build_base_model, load_base_from, measure_abilities, pretrain_base
from rhlens.tools.pretrain.data import induction_documents, qa_examples, stage_examples
from rhlens.tools.pretrain.recipe import Recipe, Stage, default_recipe_path, load_recipe, recipe_from_dict

__all__ = [
    "PretrainResult",
    "Recipe",
    "Stage",
    "build_base_model",
    "default_recipe_path",
    "induction_documents",
    "load_base_from",
    "load_recipe",
    "measure_abilities",
    "pretrain_base",
    "qa_examples",
    "recipe_from_dict",
    "stage_examples",
]
