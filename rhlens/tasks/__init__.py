"""Text-level long-context tasks: examples, generators, real-data loaders, metrics.

No torch here. See :func:`generate` for synthetic sets and
:mod:`rhlens.tasks.loaders` for the real formats. Each task (generator, metric, instruction,
real-data loader) is registered once in :mod:`rhlens.tasks.registry`; add one with
:func:`register_task`.

>>> from rhlens.tasks import generate, TASKS, VARIANTS
>>> ex = generate("kv", "symbolic", n=1, context_tokens=96, seed=0)[0]
>>> ex.prompt.endswith("Corresponding value:")
True
"""

from rhlens.tasks.example import Example, from_hf_dataset, load_jsonl, save_jsonl, to_hf_dataset
from rhlens.tasks.fitting import ContextTooShortError
from rhlens.tasks.builtin import TASKS
from rhlens.tasks.generators import VARIANTS, Generated, generate, niah_grid, variant_axes
from rhlens.tasks.llm_docs import LLMDocumentSource
from rhlens.tasks.loaders import (
    LoadResult,
    load_lost_in_the_middle_kv,
    load_lost_in_the_middle_qa,
    load_musique,
    load_summhay,
)
from rhlens.tasks.metrics import (
    answer_subspan_metric,
    best_subspan_em,
    citation_metric,
    citation_prf,
    default_metric,
    exact_match,
    first_line_metric,
    normalize_answer,
    parse_citations,
    rouge1_recall,
    token_f1,
)
from rhlens.tasks.registry import Task, get_task, register_task, studied_tasks, task_names
from rhlens.tasks.vocab import WORD_PATTERN, count_tokens, pretokenize, vocabulary

__all__ = [
    "Example", "save_jsonl", "load_jsonl", "to_hf_dataset", "from_hf_dataset",
    "TASKS", "VARIANTS", "generate", "niah_grid", "variant_axes", "ContextTooShortError", "Generated",
    "Task", "register_task", "get_task", "task_names", "studied_tasks",
    "LLMDocumentSource",
    "LoadResult", "load_lost_in_the_middle_qa", "load_lost_in_the_middle_kv", "load_musique",
    "load_summhay",
    "normalize_answer", "exact_match", "token_f1", "best_subspan_em", "rouge1_recall",
    "citation_prf", "parse_citations", "default_metric",
    "answer_subspan_metric", "first_line_metric", "citation_metric",
    "WORD_PATTERN", "pretokenize", "count_tokens", "vocabulary",
]
