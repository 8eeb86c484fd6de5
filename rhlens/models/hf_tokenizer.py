"""Moved to :mod:`rhlens.models.hf.tokenizer` (the Hugging Face folder modules became a package); this
old path re-exports it so code written against it keeps working."""

from rhlens.models.hf.tokenizer import *  # noqa: F401,F403
from rhlens.models.hf.tokenizer import __all__  # noqa: F401
