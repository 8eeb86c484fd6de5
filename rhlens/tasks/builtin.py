"""The five built-in tasks, registered in :mod:`rhlens.tasks.registry` (imported by
:mod:`rhlens.tasks`): multi-document QA, multi-hop QA, SummHay citation, key-value retrieval
and needle-in-a-haystack (synthetic only: it has no real-data format).

>>> from rhlens.tasks.registry import get_task
>>> get_task("niah").loader is None, get_task("mdqa").metric is get_task("musique").metric
(True, True)
"""

from rhlens.tasks import loaders, templates
from rhlens.tasks.generators import kv, mdqa, musique, niah, summhay
from rhlens.tasks.metrics import answer_subspan_metric, citation_metric, first_line_metric
from rhlens.tasks.registry import register_task, task_names

register_task("mdqa", mdqa.generate_one, metric=answer_subspan_metric,
              instruction=templates.DOCUMENT_QA_INSTRUCTION, loader=loaders.load_lost_in_the_middle_qa)
register_task("musique", musique.generate_one, metric=answer_subspan_metric,
              instruction=templates.DOCUMENT_QA_INSTRUCTION, loader=loaders.load_musique)
register_task("summhay", summhay.generate_one, metric=citation_metric,
              instruction=templates.CITATION_INSTRUCTION, loader=loaders.load_summhay)
register_task("kv", kv.generate_one, metric=first_line_metric,
              instruction=templates.KV_INSTRUCTION, loader=loaders.load_lost_in_the_middle_kv)
register_task("niah", niah.generate_one, metric=answer_subspan_metric, instruction=templates.NIAH_INSTRUCTION)

TASKS: tuple[str, ...] = task_names()
"""The built-in tasks (every registered one: :func:`rhlens.tasks.task_names`)."""
