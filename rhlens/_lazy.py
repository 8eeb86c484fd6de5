"""Lazy public names for a package's ``__init__``: each loads its module on first access.

>>> getattr_, dir_ = lazy_exports("pkg", {"sqrt": "math"}, {})
>>> getattr_("sqrt")(9.0), dir_()
(3.0, ['sqrt'])
"""

import importlib
from typing import Any, Callable


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Module-level ``__getattr__`` and ``__dir__`` for ``package``.

    ``exports`` maps a public name to the module that defines it; a loaded name is cached in
    ``namespace`` (the package's ``globals()``) so later lookups are plain attribute reads.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
