"""The one progress-bar helper of rhlens: a tqdm bar, or a silent stand-in when bars are off.

Every analyzer's ``progress=`` flag, the study's unit bar and any other loop go through
:func:`progress_bar`, so bars look alike and ``progress=False`` (or ``TQDM_DISABLE=1``) silences
them all the same way.

>>> bar = progress_bar(range(3), enabled=False, desc="demo")
>>> list(bar), bar.update(1), bar.set_description("x"), bar.close()
([0, 1, 2], None, None, None)
"""

from typing import Any, Iterable, Iterator


class SilentBar:
    """What :func:`progress_bar` returns when disabled: iterates ``iterable`` and ignores the
    bar calls (``update``, ``set_description``, ``set_postfix``, ``close``)."""

    def __init__(self, iterable: Iterable[Any] | None = None) -> None:
        self.iterable = iterable

    def __iter__(self) -> Iterator[Any]:
        return iter(self.iterable if self.iterable is not None else ())

    def update(self, n: float = 1) -> None: ...

    def set_description(self, desc: str | None = None) -> None: ...

    def set_postfix(self, *args: Any, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    enabled: bool,
    desc: str,
    total: float | None = None,
    unit: str = "batch",
    leave: bool = False,
    **tqdm_kwargs: Any,
) -> Any:
    """A ``tqdm.auto`` bar over ``iterable`` (or a manual bar when ``iterable`` is ``None``) when
    ``enabled``, else a :class:`SilentBar`. Extra keywords (``initial``, ``position`` ...) go to
    tqdm."""
    if not enabled:
        return SilentBar(iterable)
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave, **tqdm_kwargs)
