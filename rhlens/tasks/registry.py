"""The one list of tasks: each task's generator, metric, instruction and real-data loader.

Every other list of task names (the CLI's ``--task`` choices, the study config's allowed
``tasks``, the pretraining mix, the tests) is derived from this registry. The five built-in tasks
are registered in :mod:`rhlens.tasks.builtin`; a new task is one :func:`register_task` call.

No torch here, and no import of the rest of :mod:`rhlens.tasks` (the registry sits below it).

>>> import rhlens.tasks
>>> task_names()
('mdqa', 'musique', 'summhay', 'kv', 'niah')
>>> studied_tasks()  # the tasks with a real-data format, which the study fine-tunes on
('mdqa', 'musique', 'summhay', 'kv')
>>> get_task("kv").instruction
'Extract the value corresponding to the specified key in the JSON object below.'
>>> get_task("kv2")
Traceback (most recent call last):
ValueError: task='kv2' is not one of ('mdqa', 'musique', 'summhay', 'kv', 'niah'); register it with rhlens.tasks.register_task
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    import random

    from rhlens.tasks.example import Example
    from rhlens.tasks.generators.common import ExampleSpec, Generated

GenerateOne = Callable[["ExampleSpec", "random.Random"], "Generated"]
"""``generate_one(spec, rng) -> Generated``: one synthetic example of a task."""
Metric = Callable[[str, "Example"], float]
"""``metric(prediction, example) -> float``: a task's default score of a model's answer."""
Loader = Callable[..., list]
"""``loader(path, **options) -> list[Example]``: the task's real-data format."""


@dataclass(frozen=True)
class Task:
    """One registered task.

    Attributes:
        name: the task's name (``Example.task``).
        generate_one: the synthetic generator (see :data:`GenerateOne`).
        metric: the default answer metric (see :data:`Metric`).
        instruction: the instruction line a prompt may start with.
        loader: the real-data loader, or ``None`` (synthetic only; the study needs one).
    """

    name: str
    generate_one: GenerateOne
    metric: Metric
    instruction: str
    loader: Optional[Loader] = None


_TASKS: dict[str, Task] = {}


def register_task(name: str, generate_one: GenerateOne, *, metric: Metric, instruction: str,
                  loader: Optional[Loader] = None, replace: bool = False) -> Task:
    """Register a task under ``name``; returns its :class:`Task`.

    Raises ``ValueError`` when ``name`` is taken (pass ``replace=True`` to redefine it) or is not
    a plain identifier-like name, and ``TypeError`` when a function is not callable.

    >>> import rhlens.tasks
    >>> register_task("kv", get_task("kv").generate_one, metric=get_task("kv").metric, instruction="")
    Traceback (most recent call last):
    ValueError: task 'kv' is already registered; pass replace=True to redefine it
    """
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        raise ValueError(f"task name {name!r} must be a non-empty identifier-like string (letters, digits, _ or -)")
    if name in _TASKS and not replace:
        raise ValueError(f"task {name!r} is already registered; pass replace=True to redefine it")
    for what, fn in (("generate_one", generate_one), ("metric", metric), ("loader", loader)):
        if fn is not None and not callable(fn):
            raise TypeError(f"register_task({name!r}): {what} must be callable, got {fn!r}")
    if not isinstance(instruction, str):
        raise TypeError(f"register_task({name!r}): instruction must be a string, got {instruction!r}")
    task = Task(name, generate_one, metric, instruction, loader)
    _TASKS[name] = task
    return task


def task_names() -> tuple[str, ...]:
    """Every registered task, in registration order."""
    return tuple(_TASKS)


def studied_tasks() -> tuple[str, ...]:
    """The registered tasks with a real-data loader (the study's tasks), in registration order."""
    return tuple(name for name, t in _TASKS.items() if t.loader is not None)


def get_task(name: Any) -> Task:
    """The registered task ``name``; ``ValueError`` naming the known tasks otherwise."""
    try:
        return _TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"task={name!r} is not one of {task_names()}; register it with "
                         "rhlens.tasks.register_task") from None
