"""Answer metrics: SQuAD exact match and F1, best-subspan EM, ROUGE-1 recall, citations.

>>> normalize_answer("The  Eiffel Tower!")
'eiffel tower'
>>> exact_match("eiffel tower", ["The Eiffel Tower"]), best_subspan_em("It is the Eiffel Tower.", ["Eiffel Tower"])
(1.0, 1.0)
>>> round(token_f1("Paris France", ["Paris"]), 3)
0.667
>>> rouge1_recall("the sky is blue", "blue sky")
0.5
>>> parse_citations("See [2], [5] and [2, 7]."), citation_prf([2, 5], [2, 7])
([2, 5, 7], (0.5, 0.5, 0.5))
"""

import collections
import re
import string
from typing import TYPE_CHECKING, Callable, Iterable, Union

from rhlens.tasks.registry import get_task, task_names

if TYPE_CHECKING:
    from rhlens.tasks.example import Example

Golds = Union[str, Iterable[str]]

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)
_WORD = re.compile(r"\w+")


def normalize_answer(s: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, squeeze spaces."""
    s = s.lower()
    s = "".join(ch for ch in s if ch not in _PUNCT)
    s = _ARTICLES.sub(" ", s)
    return " ".join(s.split())


def _golds(golds: Golds) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: Golds) -> float:
    """1.0 if the normalised prediction equals any normalised gold."""
    p = normalize_answer(prediction)
    return float(any(p == normalize_answer(g) for g in _golds(golds)))


def token_f1(prediction: str, golds: Golds) -> float:
    """Best SQuAD token F1 over the golds."""
    p = normalize_answer(prediction).split()
    best = 0.0
    for g in _golds(golds):
        gt = normalize_answer(g).split()
        if not p or not gt:
            best = max(best, float(p == gt))
            continue
        common = collections.Counter(p) & collections.Counter(gt)
        same = sum(common.values())
        if same:
            prec, rec = same / len(p), same / len(gt)
            best = max(best, 2 * prec * rec / (prec + rec))
    return best


def best_subspan_em(prediction: str, golds: Golds) -> float:
    """Lost-in-the-middle's metric: 1.0 if any normalised gold is a substring of the
    normalised prediction."""
    p = normalize_answer(prediction)
    return float(any(normalize_answer(g) in p for g in _golds(golds) if normalize_answer(g)))


def rouge1_recall(reference: str, prediction: str) -> float:
    """Unigram recall of ``reference`` in ``prediction`` (lowercased word tokens,
    clipped counts); 0.0 for an empty reference."""
    ref = collections.Counter(_WORD.findall(reference.lower()))
    if not ref:
        return 0.0
    pred = collections.Counter(_WORD.findall(prediction.lower()))
    return sum((ref & pred).values()) / sum(ref.values())


_CITE = re.compile(r"\[([\d,\s]+)\]")


def parse_citations(text: str) -> list[int]:
    """Document ids cited as ``[3]`` or ``[3, 5]``, in order of first mention."""
    out: list[int] = []
    for group in _CITE.findall(text):
        for tok in re.findall(r"\d+", group):
            i = int(tok)
            if i not in out:
                out.append(i)
    return out


def citation_prf(predicted_ids: Iterable[int], gold_ids: Iterable[int]) -> tuple[float, float, float]:
    """Citation precision, recall and F1 over id sets (both empty: all 1.0)."""
    pred, gold = set(predicted_ids), set(gold_ids)
    if not pred and not gold:
        return 1.0, 1.0, 1.0
    hit = len(pred & gold)
    p = hit / len(pred) if pred else 0.0
    r = hit / len(gold) if gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def answer_subspan_metric(prediction: str, example: "Example") -> float:
    """Document QA's metric (mdqa, musique, niah): best-subspan EM over the answer and its aliases."""
    return best_subspan_em(prediction, (example.answer, *example.aliases))


def first_line_metric(prediction: str, example: "Example") -> float:
    """Key-value retrieval's metric: exact match of the prediction's first line (quotes stripped)."""
    lines = prediction.strip().splitlines()
    first = lines[0].strip().strip('"') if lines else ""
    return exact_match(first, (example.answer, *example.aliases))


def citation_metric(prediction: str, example: "Example") -> float:
    """SummHay's metric: F1 of the cited ids against the answer's."""
    return citation_prf(parse_citations(prediction), parse_citations(example.answer))[2]


METRIC_NAMES: dict[Callable[..., float], str] = {
    answer_subspan_metric: "best-subspan exact match",
    first_line_metric: "exact match of the first line",
    citation_metric: "citation F1",
}
"""What each metric computes, in words (for reports); keyed by the metric, not the task."""


def default_metric_name(task: str) -> str:
    """What :func:`default_metric` of ``task`` computes, in words (a registered metric without an
    entry in :data:`METRIC_NAMES`: its function's name).

    >>> default_metric_name("mdqa")
    'best-subspan exact match'
    """
    metric = default_metric(task)
    return METRIC_NAMES.get(metric, getattr(metric, "__name__", "custom metric"))


def default_metric(task: str) -> Callable[[str, "Example"], float]:
    """The registered task's score function ``(prediction, example) -> float`` (exact name, no
    prefix matching: a task ``kv2`` is not ``kv``).

    >>> from rhlens.tasks.example import Example
    >>> ex = Example("Document [1] x\\nAnswer:", "[1]", ((13, 14),), "summhay", "real")
    >>> default_metric("summhay")(" [1] [2]", ex)
    0.6666666666666666
    >>> default_metric("kv2")
    Traceback (most recent call last):
    ValueError: no default metric for task 'kv2': it is not one of ('mdqa', 'musique', 'summhay', 'kv', 'niah'); register it with rhlens.tasks.register_task
    """
    if task not in task_names():
        raise ValueError(f"no default metric for task {task!r}: it is not one of {task_names()}; "
                         "register it with rhlens.tasks.register_task")
    return get_task(task).metric
