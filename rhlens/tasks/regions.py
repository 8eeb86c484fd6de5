"""Where an example's question and documents are: character spans read off the prompt templates.

Query-focus detectors (QRHead, :mod:`rhlens.scoring.detectors.query_focus`) need three things of
every example: the question (to swap for a null question), the query region (the rows whose
attention is read: from the question's label to the end of the prompt, as QRHead's query span
runs from its late instruction through the chat suffix) and the documents (with the gold ones,
those holding a needle). Every generator and loader writes its prompt with
:mod:`rhlens.tasks.templates`, so the spans are read off the prompt here, one rule per template,
for generated, loaded and saved examples alike:

- documents: ``meta["doc_spans"]`` when the generator recorded them (mdqa, musique, summhay),
  else the ``Document [i]`` lines of a document prompt (the real-data loaders), else the
  key-value pairs of a kv prompt, else (niah, or any other text) the sentences of the context;
- question: the text between ``"\\n\\nQuestion: "`` and ``"\\nAnswer:"`` (kv: the key after
  ``"\\n\\nKey: "``); ``meta["question_span"]`` overrides it for a hand-built prompt;
- gold documents: those that overlap a needle.

>>> from rhlens.tasks.templates import document_prompt
>>> from rhlens.tasks import Example
>>> p = document_prompt(["Document [1] Ann is 3.", "Document [2] Bo lives in Rome."], "Where does Bo live?", task="mdqa")
>>> s = p.index("Rome"); ex = Example(p, "Rome", ((p.index("Bo lives"), s + 5),), "mdqa", "real")
>>> r = regions(ex)
>>> p[slice(*r.question)], p[slice(*r.query)]
('Where does Bo live?', 'Question: Where does Bo live?\\nAnswer:')
>>> [p[a:b] for a, b in r.documents], r.gold
(['Document [1] Ann is 3.', 'Document [2] Bo lives in Rome.'], (1,))
>>> null_prompt(ex).endswith("Question: N/A\\nAnswer:")
True
"""

import re
from dataclasses import dataclass

from rhlens.tasks import templates
from rhlens.tasks.registry import get_task, task_names
from rhlens.tasks.spans import sentence_spans

Span = tuple[int, int]
NULL_QUESTION = "N/A"  # QRHead's null query (``AttnBasedRetriever(null_query="N/A")``)

_DOC_HEADER = re.compile(r"(?:^|(?<=\n))Document \[\d+\]")
_KV_PAIR = re.compile(r'"(?:[^"\\]|\\.)*": "(?:[^"\\]|\\.)*"')
_KV_PREFIX = templates.KV_QUESTION.split("{key}")[0]  # "\n\nKey: "
_KV_SUFFIX = templates.KV_QUESTION.split("{key}")[1]  # "\nCorresponding value:"


@dataclass(frozen=True)
class Regions:
    """Character spans of one example's prompt.

    Attributes:
        question: ``[start, end)`` of the question text (what a null question replaces).
        query: ``[start, len(prompt))``: the question's label, the question and the answer cue.
        documents: ``[start, end)`` of each document, in prompt order.
        gold: indices into ``documents`` of the ones that overlap a needle.
    """

    question: Span
    query: Span
    documents: tuple[Span, ...]
    gold: tuple[int, ...]


def _where(example) -> str:
    return f"example (task {example.task!r}, prompt {example.prompt[:40]!r}...)"


def _question(example) -> tuple[Span, int]:
    """``(question span, query-region start)``."""
    p = example.prompt
    given = (example.meta or {}).get("question_span")
    if given is not None:
        s, e = int(given[0]), int(given[1])
        if not 0 <= s < e <= len(p):
            raise ValueError(f"{_where(example)}: meta['question_span']={given} is empty or outside the prompt")
        line = p.rfind("\n", 0, s) + 1
        label = p[line:s].rstrip()  # the query rows start at a label such as "Question:" on its line
        return (s, e), line if label.endswith(":") and len(label) <= 20 else s
    for prefix, suffix in ((templates.QUESTION_PREFIX, templates.ANSWER_SUFFIX), (_KV_PREFIX, _KV_SUFFIX)):
        at, end = p.rfind(prefix), p.rfind(suffix)
        if at >= 0 and end > at + len(prefix):
            return (at + len(prefix), end), at + len(prefix) - len(prefix.lstrip("\n"))
    raise ValueError(
        f"{_where(example)}: no question found (the prompt does not end with {templates.QUESTION_PREFIX!r}<question>"
        f"{templates.ANSWER_SUFFIX!r}); set meta['question_span'] = [start, end] for a hand-built prompt"
    )


def _trimmed(text: str, s: int, e: int) -> Span | None:
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return (s, e) if e > s else None


def _documents(example, context_end: int) -> list[Span]:
    p = example.prompt
    given = (example.meta or {}).get("doc_spans")
    if given:
        return [(int(s), int(e)) for s, e in given]
    starts = [m.start() for m in _DOC_HEADER.finditer(p, 0, context_end)]
    if starts:
        bounds = zip(starts, [*starts[1:], context_end])
        return [span for s, e in bounds if (span := _trimmed(p, s, e))]
    pairs = [m.span() for m in _KV_PAIR.finditer(p, 0, context_end)]
    if pairs:
        return pairs
    head = get_task(example.task).instruction if example.task in task_names() else ""
    start = len(head) if head and p.startswith(head) else 0
    return sentence_spans(p, start, context_end)


def regions(example) -> Regions:
    """The :class:`Regions` of ``example`` (an :class:`rhlens.tasks.Example`; see the module
    docstring for the rules). Raises ``ValueError`` naming the example when its prompt has no
    question or no document."""
    question, query_start = _question(example)
    docs = _documents(example, query_start)
    if not docs:
        raise ValueError(f"{_where(example)}: no document found before the question; set meta['doc_spans']")
    gold = tuple(i for i, (s, e) in enumerate(docs) if any(a < e and s < b for a, b in example.needles))
    return Regions(question=question, query=(query_start, len(example.prompt)), documents=tuple(docs), gold=gold)


def null_prompt(example, null: str = NULL_QUESTION) -> str:
    """``example.prompt`` with its question replaced by ``null`` (QRHead's calibration prompt:
    everything before the question is unchanged)."""
    s, e = regions(example).question
    return example.prompt[:s] + null + example.prompt[e:]
