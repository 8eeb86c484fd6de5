"""Synthetic long-context generators: one entry point for every task and variant (:func:`generate`)."""

import json
import random

from typing import Any, Optional, Sequence, Union

from rhlens.progress import progress_bar
from rhlens.tasks.example import Example
from rhlens.tasks.generators.common import VARIANTS, ExampleSpec, Generated, variant_axes
from rhlens.tasks.registry import get_task

__all__ = ["VARIANTS", "Generated", "generate", "niah_grid", "variant_axes"]


def generate(task: str, variant: str = "realistic", n: int = 1, *, context_tokens: int = 512,
             tokenizer: Any = None, seed: int = 0, position: Union[int, float, None] = None,
             instruction: Optional[bool] = None, documents: Any = None, progress: bool = False,
             **knobs: Any) -> list[Example]:
    """Generate ``n`` examples of ``task`` in ``variant``.

    Args:
        task: a registered task (:func:`rhlens.tasks.task_names`; built in: :data:`rhlens.tasks.TASKS`).
        variant: one of :data:`VARIANTS`.
        n: number of examples.
        context_tokens: target prompt length in tokens (within 5%).
        tokenizer: None (word-level count) or an object with ``encode(text)``.
        seed: examples are a deterministic function of the arguments and ``seed``
            (example ``i`` uses ``random.Random(f"{seed}:{i}")``-style seeding).
        position: needle position: document / pair index (int) or depth fraction
            (float in [0, 1]); None draws one per example.
        instruction: start the prompt with the task instruction; None (default)
            means yes from 256 tokens up, no below (tiny contexts need the room).
        documents: an object with ``sentences(title, part) -> list[str]`` (e.g.
            :class:`rhlens.tasks.llm_docs.LLMDocumentSource`) that writes the
            haystack of varied-haystack variants.
        progress: a tqdm bar over the examples (generation takes minutes for
            tens of thousands of long examples).
        **knobs: task knobs (``n_docs``, ``hops``, ``n_citing``, ``key_chunks``,
            ``value_chunks``, ``needle``; ``question_form``: ``"template"`` or ``"paraphrase"``, see
            :data:`rhlens.tasks.generators.common.QUESTION_FORMS`), recorded in ``meta``.

    >>> exs = generate("mdqa", "fictional", n=2, context_tokens=64, seed=0)
    >>> len(exs), all(e.variant == "fictional" for e in exs)
    (2, True)
    >>> from rhlens.tasks.vocab import count_tokens
    >>> abs(count_tokens(exs[0].prompt) - 64) <= 3, exs == generate("mdqa", "fictional", n=2, context_tokens=64, seed=0)
    (True, True)
    >>> generate("poetry")
    Traceback (most recent call last):
    ValueError: task='poetry' is not one of ('mdqa', 'musique', 'summhay', 'kv', 'niah'); register it with rhlens.tasks.register_task
    """
    generate_one = get_task(task).generate_one
    variant_axes(variant)
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n={n!r} must be a non-negative int")
    if not isinstance(context_tokens, int) or context_tokens < 1:
        raise ValueError(f"context_tokens={context_tokens!r} must be a positive int")
    if instruction is None:
        instruction = context_tokens >= 256
    out = []
    for i in progress_bar(range(n), enabled=progress, desc=f"generate {task}/{variant}", total=n, unit="example"):
        rng = random.Random(f"rhlens:{task}:{variant}:{seed}:{i}")
        spec = ExampleSpec(task=task, variant=variant, context_tokens=context_tokens,
                     tokenizer=tokenizer, seed=seed, index=i, position=position,
                     instruction=instruction, documents=documents, knobs=dict(knobs))
        got = generate_one(spec, rng)
        if not isinstance(got, Generated):
            raise TypeError(f"task {task!r}: generate_one returned {type(got).__name__}; return a "
                            "rhlens.tasks.Generated(prompt, answer, needles, answer_spans, meta)")
        meta = json.loads(json.dumps(got.meta))
        out.append(Example(prompt=got.prompt, answer=got.answer, needles=got.needles, task=task,
                           variant=variant, meta=meta, answer_spans=got.answer_spans).validate())
    return out


def niah_grid(lengths: Sequence[int], depths: Sequence[float],
              needles: Union[int, Sequence[tuple[str, str, str]]] = 1, *, variant: str = "realistic",
              tokenizer: Any = None, seed: int = 0, **knobs: Any) -> list[Example]:
    """Wu et al.'s needle-in-a-haystack grid: every length x depth cell.

    ``needles`` is the number of generated needles per cell (int) or a sequence
    of ``(sentence, question, answer)`` triples used in every cell. Each example's
    ``meta`` carries ``context_tokens`` and ``position`` (the depth).

    >>> grid = niah_grid([64, 128], [0.0, 1.0], needles=1, variant="realistic-filler")
    >>> [(e.meta["context_tokens"], e.meta["position"]) for e in grid]
    [(64, 0.0), (64, 1.0), (128, 0.0), (128, 1.0)]
    """
    out: list[Example] = []
    for li, length in enumerate(lengths):
        for di, depth in enumerate(depths):
            cell_seed = seed * 1_000_003 + li * 1009 + di
            if isinstance(needles, int):
                out.extend(generate("niah", variant, n=needles, context_tokens=int(length),
                                    tokenizer=tokenizer, seed=cell_seed, position=float(depth),
                                    **knobs))
            else:
                for j, nd in enumerate(tuple(x) for x in needles):
                    out.extend(generate("niah", variant, n=1, context_tokens=int(length),
                                        tokenizer=tokenizer, seed=cell_seed + j,
                                        position=float(depth), needle=nd, **knobs))
    return out
