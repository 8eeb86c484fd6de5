"""Where each file of a study's run folder lives: one place for the layout, and the list of what
rhlens writes there (so ``--overwrite`` removes those and nothing else).

Every path is relative to the run folder, with ``/`` separators::

    study.json                         the config and its digest (the manifest)
    .study.lock                        held while a study runs in the folder
    results.json, report.md, report.html
    <task>/data/<set>.jsonl            the example sets; <task>/data/summary.json is the data record
    <task>/models/<model>/model        a rhlens.save_model folder; .../finetune.json its record,
    <task>/models/<model>/train        the fine-tune's checkpoints while it runs
    <task>/eval/<model>.json
    <task>/scores/<model>.json         and <model>.<method>.safetensors, <model>.<method>.wu.json
    <task>/compare.json
    <task>/knockout/<model>.json
    <task>/patching/<model>.json
    <task>/detectors/<model>.json      and <task>/detectors/<model>/ (rhlens detectors' files)

>>> Layout.record("scores", "mdqa", "real"), Layout.scores_file("mdqa", "real", "decode")
('mdqa/scores/real.json', 'mdqa/scores/real.decode.safetensors')
>>> Layout.record("compare", "kv", None)
'kv/compare.json'
>>> Layout.written(["mdqa"])[:4]
['study.json', '.study.lock', 'results.json', 'report.md']
"""

from collections.abc import Callable
from typing import ClassVar

__all__ = ["Layout"]


def _per_model(folder: str) -> Callable[[str, "str | None"], str]:
    return lambda task, model: f"{task}/{folder}/{model}.json"


class Layout:
    """The run folder's paths (see the module docstring); every method returns a relative path."""

    MANIFEST = "study.json"
    LOCK = ".study.lock"
    RESULTS = "results.json"
    REPORTS = ("report.md", "report.html")
    #: what rhlens writes inside each ``<task>/`` folder
    TASK_ENTRIES = ("data", "models", "eval", "scores", "compare.json", "knockout", "patching", "detectors")

    @staticmethod
    def data_set(task: str, name: str) -> str:
        return f"{task}/data/{name}.jsonl"

    @staticmethod
    def model_dir(task: str, model: str) -> str:
        return f"{task}/models/{model}/model"

    @staticmethod
    def train_dir(task: str, model: str) -> str:
        return f"{task}/models/{model}/train"

    @staticmethod
    def scores_file(task: str, model: str, method: str) -> str:
        return f"{task}/scores/{model}.{method}.safetensors"

    @staticmethod
    def detectors_dir(task: str, model: str) -> str:
        return f"{task}/detectors/{model}"

    @staticmethod
    def wu_json(task: str, model: str, method: str) -> str:
        return f"{task}/scores/{model}.{method}.wu.json"

    #: the JSON record that marks each stage's unit of work done (``model`` is ``None`` for whole-task stages)
    RECORDS: ClassVar[dict[str, Callable[[str, "str | None"], str]]] = {
        "data": lambda task, model: f"{task}/data/summary.json",
        "finetune": lambda task, model: f"{task}/models/{model}/finetune.json",
        "evaluate": _per_model("eval"),
        "scores": _per_model("scores"),
        "compare": lambda task, model: f"{task}/compare.json",
        "knockout": _per_model("knockout"),
        "patching": _per_model("patching"),
        "detectors": _per_model("detectors"),
    }

    @classmethod
    def record(cls, stage: str, task: str, model: "str | None") -> str:
        """The record of ``stage`` for ``model`` of ``task``."""
        return cls.RECORDS[stage](task, model)

    @staticmethod
    def replicate(seed: int) -> str:
        """The folder of replicate ``seed`` in a study of several seeds (a whole one-seed study)."""
        return f"seed-{seed}"

    @classmethod
    def written(cls, tasks: "list[str]", seeds: "list[int] | None" = None) -> list[str]:
        """Everything a study of ``tasks`` writes, top-level files first: what ``--overwrite`` removes
        (with several ``seeds``, also each replicate's folder)."""
        return [cls.MANIFEST, cls.LOCK, cls.RESULTS, *cls.REPORTS,
                *(f"{task}/{entry}" for task in tasks for entry in cls.TASK_ENTRIES),
                *(cls.replicate(s) for s in (seeds or []) if len(seeds or []) > 1)]
