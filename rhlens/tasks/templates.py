"""Prompt templates shared by the generators and the real-data loaders.

Documents follow lost-in-the-middle: ``Document [i](Title: t) text`` (1-based
``i``), joined by newlines; the question comes last and the prompt ends right
where the answer starts.

>>> print(document_prompt(["Document [1](Title: A) a."], "Who?", task="mdqa"))
Answer the question using only the documents below.
<BLANKLINE>
Document [1](Title: A) a.
<BLANKLINE>
Question: Who?
Answer:
>>> format_document(2, "Some text.", title=None)
'Document [2] Some text.'
"""

import json

from rhlens.tasks.registry import get_task

DOCUMENT_QA_INSTRUCTION = "Answer the question using only the documents below."
CITATION_INSTRUCTION = "Cite the documents that state the insight in the question."
NIAH_INSTRUCTION = "Read the text and answer the question."
KV_INSTRUCTION = "Extract the value corresponding to the specified key in the JSON object below."
# Which task starts with which instruction is registered in rhlens.tasks.builtin.

QUESTION_PREFIX = "\n\nQuestion: "
ANSWER_SUFFIX = "\nAnswer:"
SUMMHAY_QUESTION = "Which documents state that {insight}"
KV_DATA_HEADER = "JSON data:\n"
KV_QUESTION = "\n\nKey: {key}\nCorresponding value:"

# Every literal string the templates can write (for the vocabulary).
LITERALS = (
    DOCUMENT_QA_INSTRUCTION, CITATION_INSTRUCTION, NIAH_INSTRUCTION, KV_INSTRUCTION, QUESTION_PREFIX, ANSWER_SUFFIX, SUMMHAY_QUESTION, "?",
    KV_DATA_HEADER, KV_QUESTION, "Document [ ](Title: ) ", '{"": "",\n ""}', "\n\n",
)


def document_header(index: int, title=None) -> str:
    """The header before a document's text; ``index`` is 1-based."""
    if title is None:
        return f"Document {citation(index)} "
    return f"Document {citation(index)}(Title: {title}) "


def citation(index: int) -> str:
    """How document ``index`` (1-based) is identified, in its header and in a citation answer."""
    return f"[{index}]"


def format_citations(ids) -> str:
    """A citation answer: ``[1, 4] -> "[1] [4]"`` (ascending), each id as its header shows it.

    >>> format_citations([4, 1])
    '[1] [4]'
    """
    return " ".join(citation(i) for i in sorted(ids))


def id_span(index: int, title=None) -> tuple:
    """[start, end) of the :func:`citation` identifier inside :func:`document_header`.

    >>> h = document_header(3, "Oslo"); a, b = id_span(3, "Oslo"); h[a:b]
    '[3]'
    """
    header = document_header(index, title)
    start = header.index(citation(index))
    return start, start + len(citation(index))


def format_document(index: int, text: str, title=None) -> str:
    return document_header(index, title) + text


def head(task: str, instruction: bool) -> str:
    """Text before the documents: the task's registered instruction and a blank line, or ''."""
    return get_task(task).instruction + "\n\n" if instruction else ""


def tail(question: str) -> str:
    """Text after the documents: the question and the answer cue."""
    return QUESTION_PREFIX + question + ANSWER_SUFFIX


def document_prompt(documents, question: str, *, task: str, instruction: bool = True) -> str:
    """Join formatted documents into a full prompt."""
    return head(task, instruction) + "\n".join(documents) + tail(question)


def summhay_question(insight: str) -> str:
    """The citation question naming an insight sentence.

    >>> summhay_question("Ann lives in Rome.")
    'Which documents state that Ann lives in Rome?'
    >>> summhay_question("The value of ba1 is ke4.")
    'Which documents state that the value of ba1 is ke4?'
    """
    text = insight.strip().rstrip(".")
    if text.startswith("The "):
        text = "the " + text[4:]
    return SUMMHAY_QUESTION.format(insight=text) + "?"


def kv_pair(key: str, value: str) -> tuple:
    """JSON-rendered key and value of one pair, e.g. ``('"k"', '"v"')``."""
    return json.dumps(key, ensure_ascii=False), json.dumps(value, ensure_ascii=False)


def kv_prompt(pairs, key: str, *, instruction: bool = True):
    """Lost-in-the-middle key-value prompt; returns ``(prompt, value_spans, pair_spans)``.

    ``value_spans[i]`` is the [start, end) span of the i-th value (without quotes),
    ``pair_spans[i]`` that of the whole i-th pair as rendered (``"key": "value"``).

    >>> p, spans, pairs = kv_prompt([("a", "b"), ("c", "d")], "c", instruction=False)
    >>> print(p)
    JSON data:
    {"a": "b",
     "c": "d"}
    <BLANKLINE>
    Key: "c"
    Corresponding value:
    >>> p[spans[1][0]:spans[1][1]], p[pairs[1][0]:pairs[1][1]]
    ('d', '"c": "d"')
    """
    out = [head("kv", instruction), KV_DATA_HEADER, "{"]
    pos = sum(len(x) for x in out)
    spans, pair_spans = [], []
    for i, (k, v) in enumerate(pairs):
        jk, jv = kv_pair(k, v)
        sep = "" if i == 0 else ",\n "
        start = pos + len(sep)
        pos = start + len(jk) + 2
        spans.append((pos + 1, pos + len(jv) - 1))
        pos += len(jv)
        pair_spans.append((start, pos))
        out.append(sep + jk + ": " + jv)
    out.append("}")
    out.append(KV_QUESTION.format(key=json.dumps(key, ensure_ascii=False)))
    return "".join(out), spans, pair_spans
