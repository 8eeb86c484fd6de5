"""argparse types for the command line's numbers: each refuses, at parse time, a value that would
run but mean something else (``--n 0`` used every example, ``--n -1`` dropped the last one,
``--threshold 2`` or ``nan`` selected no head).

>>> at_least(1)("3"), fraction("0.1")
(3, 0.1)
>>> at_least(1)("0")
Traceback (most recent call last):
argparse.ArgumentTypeError: must be an integer of at least 1, got 0
"""

import argparse
from collections.abc import Callable


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer ``>= low``."""

    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer of at least {low}, got {value}")
        return value

    parse.__name__ = "integer"  # argparse's "invalid integer value" for text that is no number
    return parse


def fraction(text: str) -> float:
    """An argparse type: a number in [0, 1] (retrieval scores are shares of copied tokens)."""
    value = float(text)
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text}")
    return value


def fraction_or_none(text: str) -> float | None:
    """An argparse type: :func:`fraction`, or ``none`` (``--rouge-gate none``: count every example)."""
    return None if text.strip().lower() == "none" else fraction(text)
