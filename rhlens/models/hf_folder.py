"""Moved to :mod:`rhlens.models.hf.folder` (the Hugging Face folder modules became a package); this
old path re-exports it so code written against it keeps working."""

from rhlens.models.hf.folder import *  # noqa: F401,F403
from rhlens.models.hf.folder import __all__  # noqa: F401
