"""The weight dtypes rhlens loads checkpoints in, by name (torch-free, so the CLI and the study
config can check a name before torch loads).

>>> DTYPE_NAMES
('float32', 'bfloat16', 'float16')
>>> check_dtype_name("float64", "--dtype")
Traceback (most recent call last):
...
ValueError: --dtype='float64': use one of float32, bfloat16, float16
"""

from typing import Literal, get_args

DtypeName = Literal["float32", "bfloat16", "float16"]
DTYPE_NAMES: tuple[str, ...] = get_args(DtypeName)

__all__ = ["DTYPE_NAMES", "DtypeName", "check_dtype_name"]


def check_dtype_name(name: str, where: str) -> str:
    """``name`` if it is one of :data:`DTYPE_NAMES`, else a ``ValueError`` naming ``where``."""
    if name not in DTYPE_NAMES:
        raise ValueError(f"{where}={name!r}: use one of {', '.join(DTYPE_NAMES)}")
    return name
