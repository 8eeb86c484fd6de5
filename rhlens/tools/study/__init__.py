"""The paper's whole pipeline in one call: :class:`Study` with a :class:`StudyConfig`.

``rhlens study --out runs/study`` (the ``tiny`` preset) is ``Study("tiny", "runs/study").run()``.
See :mod:`rhlens.tools.study.pipeline` for the stages and the run folder's layout, and the preset files
``rhlens/recipes/study_*.toml`` for every config key.
"""

from rhlens.tools.study.config import PRESETS, StudyConfig
from rhlens.tools.study.pipeline import STAGES, Study

__all__ = ["Study", "StudyConfig", "PRESETS", "STAGES"]
