"""The paper's whole pipeline in one call: :class:`Study` with a :class:`StudyConfig`.

``rhlens study --out runs/study`` (the ``tiny`` preset) is ``Study("tiny", "runs/study").run()``.
See :mod:`rhlens.tools.study.pipeline` for the stages and the run folder's layout, and the preset files
``rhlens/recipes/study_*.toml`` for every config key.
"""

from typing import TYPE_CHECKING

from rhlens._lazy import lazy_exports as _lazy_exports

# Loaded on first use, so that importing one of the study's modules (say, the detectors' command-line
# options) does not load the pipeline and torch.
_EXPORTS = {
    "Study": "rhlens.tools.study.pipeline",
    "STAGES": "rhlens.tools.study.pipeline",
    "StudyConfig": "rhlens.tools.study.config",
    "PRESETS": "rhlens.tools.study.config",
}
__all__ = ["Study", "StudyConfig", "PRESETS", "STAGES"]

if TYPE_CHECKING:
    from rhlens.tools.study.config import PRESETS, StudyConfig
    from rhlens.tools.study.pipeline import STAGES, Study

__getattr__, __dir__ = _lazy_exports(__name__, _EXPORTS, globals())
