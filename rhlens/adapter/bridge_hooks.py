"""Hooks on a ``TransformerBridge`` without its per-context fixed cost.

``TransformerBridge.hooks()`` rebuilds ``hook_dict`` (every hook point plus its aliases) and an
alias map in every ``with`` block; rhlens opens one per batch, so on a tiny model that rebuild was
about a quarter of a scoring run (issue 25, item 4). :func:`bridge_hooks` resolves names from a map
built once per bridge and adds the hooks to the hook points directly; a hook is told the name it
was registered with (a bridge fires an alias such as ``blocks.0.hook_resid_pre`` under its
canonical name ``blocks.0.hook_in``). Filters (callables) go through ``model.hooks()``.

Example: :func:`rhlens.adapter.hooks` (which calls this for bridges).
"""

import contextlib
from typing import Any, Callable, Iterator, Sequence

__all__ = ["bridge_hooks", "hook_points"]

_POINTS = "_rhlens_hook_points"


class _AskedName:
    """A hook point seen under the name the hook was registered with (``hook.name``); the rest is the hook point's."""

    def __init__(self, hook: Any, name: str) -> None:
        self._hook, self.name = hook, name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._hook, attr)


def _named_as_asked(name: str, fn: Callable) -> Callable:
    return lambda tensor, hook: fn(tensor, _AskedName(hook, name))


def hook_points(bridge: Any) -> dict[str, Any]:
    """``{hook name or alias: HookPoint}`` of ``bridge``, built on first use and kept on the bridge."""
    points = bridge.__dict__.get(_POINTS)
    if points is None:
        points = dict(bridge.hook_dict)
        object.__setattr__(bridge, _POINTS, points)
    return points


@contextlib.contextmanager
def bridge_hooks(bridge: Any, fwd_hooks: Sequence[tuple[Any, Callable]], bwd_hooks: Sequence[tuple[Any, Callable]]) -> Iterator[Any]:
    """Add the hooks for the ``with`` block and remove exactly those on exit (also when the body raises)."""
    pairs = [("fwd", n, f) for n, f in fwd_hooks] + [("bwd", n, f) for n, f in bwd_hooks]
    named = [(d, n, f) for d, n, f in pairs if isinstance(n, str)]
    filtered = [(d, n, f) for d, n, f in pairs if not isinstance(n, str)]
    points = hook_points(bridge) if named else {}
    unknown = [n for _, n, _ in named if n not in points]
    if unknown:
        raise ValueError(f"the bridge has no hook point {unknown[0]!r}")
    added: list[tuple[Any, list, Any]] = []
    try:
        for direction, name, fn in named:
            point = points[name]
            handles = point.fwd_hooks if direction == "fwd" else point.bwd_hooks
            point.add_hook(_named_as_asked(name, fn), dir=direction)
            added.append((point, handles, handles[-1]))
        with contextlib.ExitStack() as stack:
            if filtered:
                stack.enter_context(bridge.hooks(fwd_hooks=[(n, f) for d, n, f in filtered if d == "fwd"],
                                                 bwd_hooks=[(n, f) for d, n, f in filtered if d == "bwd"], reset_hooks_end=True))
            yield bridge
    finally:
        for _point, handles, handle in reversed(added):
            handle.hook.remove()
            handles[:] = [h for h in handles if h is not handle]
