"""Locating an answer in text: whole-word matches first, in-word matches reported as such.

Matching is case-insensitive and whitespace runs match any whitespace. A match is
*whole-word* when no letter or digit touches it on either side (for a candidate
that starts or ends with one); a match inside a longer word ("190" in "1901",
"America" in "American") is an *in-word* match, which is never used as an
answer span (issue 14 item 12).

>>> find_word("Born in Lisbon, Portugal.", "portugal")
(16, 24)
>>> find_word("In 1901 it rained.", "190") is None
True
>>> find_answer("a 1946 American film", ["the US", "America"])
(7, 14, 'America', False)
>>> find_answer("a 1946 America film", ["the US", "America"])
(7, 14, 'America', True)

Evidence needles are whole sentences: :func:`sentence_spans` splits text into
sentences (initials, "Dr.", "No. 40" and "3.5" do not end one) and :func:`sentence_around`
widens an answer span to the sentence(s) holding it.

>>> t = "It rained. Dr. G. Stanley Hall was born in 1844. He wrote 3.5 books."
>>> [t[a:b] for a, b in sentence_spans(t)]
['It rained.', 'Dr. G. Stanley Hall was born in 1844.', 'He wrote 3.5 books.']
>>> a, b = find_word(t, "G. Stanley Hall"); t[slice(*sentence_around(t, a, b))]
'Dr. G. Stanley Hall was born in 1844.'
"""

import functools
import re


@functools.lru_cache(maxsize=4096)
def _pattern(candidate: str, right_boundary: bool = True):
    c = candidate.strip()
    if not c:
        return None
    body = r"\s+".join(re.escape(part) for part in c.split())
    return re.compile((r"(?<!\w)" if c[0].isalnum() else "") + body
                      + (r"(?!\w)" if right_boundary and c[-1].isalnum() else ""),
                      flags=re.IGNORECASE)


def iter_words(text: str, candidate: str, start: int = 0, end=None):
    """Yield ``(start, end)`` of every whole-word occurrence of ``candidate`` that lies
    inside ``text[start:end]`` (boundaries are judged against the whole ``text``)."""
    pat = _pattern(candidate)
    if pat is None:
        return
    end = len(text) if end is None else end
    for m in pat.finditer(text, start):
        if m.end() > end:
            return
        yield m.start(), m.end()


def find_word(text: str, candidate: str, start: int = 0, end=None):
    """First whole-word ``(start, end)`` of ``candidate`` in ``text[start:end]``, or None."""
    return next(iter_words(text, candidate, start, end), None)


def find_answer(text: str, candidates):
    """First ``(start, end, candidate, whole_word)`` where a candidate occurs in ``text``.

    Every candidate is tried as a whole word first; only when none occurs so does
    the first left-bounded in-word match come back, with ``whole_word=False``
    (callers use it as evidence at most, never as an answer span). None when absent.
    """
    for cand in candidates:
        hit = find_word(text, cand)
        if hit:
            return hit[0], hit[1], cand, True
    for cand in candidates:
        pat = _pattern(cand, right_boundary=False)
        m = pat.search(text) if pat is not None else None
        if m:
            return m.start(), m.end(), cand, False
    return None


def locate_in_needles(prompt: str, candidates, needles) -> tuple:
    """The answer spans of a hand-built example: ``((start, end),)`` of the first
    whole-word occurrence of the first candidate found inside a needle span, or ``()``.

    >>> p = "Ann lives in Rome. Bo lives in Romeo."
    >>> locate_in_needles(p, ["Rome"], [(19, 37), (0, 18)])
    ((13, 17),)
    >>> locate_in_needles(p, ["Rom"], [(0, 37)])
    ()
    """
    for cand in candidates:
        if not isinstance(cand, str) or not cand.strip():
            continue
        for s, e in needles:
            hit = find_word(prompt, cand, max(0, s), min(len(prompt), e))
            if hit:
                return (hit,)
    return ()


# a sentence ends at [.!?] (plus closing quotes or brackets) before whitespace or the end,
# or at a newline; a period after an abbreviation or an initial, or before a lowercase
# word or a number, does not end one
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)|\n")
_CLOSERS = "\"'\u201d\u2019)]"
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr mt ft vs etc inc co ltd corp gen col lt sgt capt rev "
    "gov sen rep hon jan feb mar apr jun jul aug sep sept oct nov dec ca approx fig".split())


def _is_abbreviation(text: str, dot: int, lo: int) -> bool:
    """Whether the period at ``text[dot]`` closes an abbreviation or an initial."""
    k = dot
    while k > lo and not text[k - 1].isspace():
        k -= 1
    word = text[k:dot].lstrip("(\"'\u201c\u2018")
    return (len(word) == 1 and word.isalpha()) or "." in word \
        or word.lower() in _ABBREVIATIONS


def _continues(text: str, at: int, end: int) -> bool:
    """Whether the text after a period at ``text[at:]`` goes on with a lowercase word
    or a number ("KV. 550", "etc. and"), so the period ends no sentence."""
    while at < end and text[at].isspace() and text[at] != "\n":
        at += 1
    return at < end and (text[at].islower() or text[at].isdigit())


def _emit_trimmed(text: str, a, b, out: list) -> None:
    """Append ``text[a:b]``'s span trimmed of whitespace to ``out``, unless nothing is left."""
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    if b > a:
        out.append((a, b))


def sentence_spans(text: str, start: int = 0, end=None) -> list:
    """``(start, end)`` of every sentence of ``text[start:end]``, trimmed of whitespace."""
    end = len(text) if end is None else end
    out: list = []
    s = start
    for m in _END.finditer(text, start, end):
        if m.group().rstrip(_CLOSERS) == "." and (_is_abbreviation(text, m.start(), start)
                                                  or _continues(text, m.end(), end)):
            continue
        _emit_trimmed(text, s, m.end(), out)
        s = m.end()
    _emit_trimmed(text, s, end, out)
    return out


def sentence_around(text: str, start: int, end: int, lo: int = 0, hi=None) -> tuple:
    """``(start, end)`` of the sentence(s) of ``text[lo:hi]`` that hold ``text[start:end]``
    (the union of every sentence it overlaps)."""
    spans = [(a, b) for a, b in sentence_spans(text, lo, hi) if a < end and start < b]
    if not spans:
        return start, end
    return min(start, spans[0][0]), max(end, spans[-1][1])
