"""rhlens's version, in one place (``pyproject.toml`` repeats it for the package index).

>>> from rhlens.version import __version__
>>> __version__.count(".")
2
"""

__version__ = "0.1.0"
