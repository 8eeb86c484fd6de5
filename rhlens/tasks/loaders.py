"""Loaders for the real long-context formats, producing :class:`Example` with needles located.

Formats (``.json``, ``.jsonl`` or ``.jsonl.gz``):

* lost-in-the-middle QA: ``question``, ``answers``, ``ctxs[{title, text, hasanswer, isgold}]``;
  the answer span is the first answer (then the other answers) found in the gold
  context (``isgold``, else the first ``hasanswer``), then in other ``hasanswer``
  ones; the needle is the sentence of that context holding it.
* lost-in-the-middle key-value: ``ordered_kv_records``, ``key``, ``value``; the
  needle is the whole gold pair as rendered (``"key": "value"``), the answer span
  the value inside it.
* MuSiQue: ``paragraphs[{idx, title, paragraph_text, is_supporting}]``, ``question``,
  ``question_decomposition[{answer, paragraph_support_idx}]``, ``answer``,
  ``answer_aliases``; one needle per hop: the sentence of its supporting paragraph
  holding the hop's answer.
* SummHay: ``documents[{document_id, document_text, insights_included}]``,
  ``subtopics[{insights[{insight_id, insight}]}]``; one example per insight that
  some document includes; the answer cites those documents (``"[2] [7]"``). SummHay
  documents paraphrase insights, so each needle is the shortest window of
  consecutive sentences (up to ``max_sentences``) whose ROUGE-1 recall of the
  insight reaches ``min_recall``, in each citing document (see :func:`locate_insight`).

Needles are evidence (what knockout, blocking and patching positions refer to):
whole sentences (:func:`rhlens.tasks.spans.sentence_around`; the whole passage when
the sentence would be the answer alone) or the whole key-value pair. Every
example's ``answer_spans`` hold what a retrieval head copies: the answer inside
its needle (QA, kv) or the cited documents' ``[i]`` identifiers (SummHay).

Prompts use the generators' templates (:mod:`rhlens.tasks.templates`). Answers
are matched case-insensitively as whole words, with whitespace runs matching any
whitespace. An answer (or a MuSiQue hop's answer) that occurs only inside a
longer word ("190" in "1901") is never used as a span: the example is skipped and
counted with one warning per load, or with ``strict=True`` that is an error. A malformed record raises
``ValueError`` naming the file, line (or record) and field; a needle that cannot
be found raises too, or, with ``errors="skip"``, is skipped and counted in the
returned :class:`LoadResult` (``.skipped``, ``.skip_reasons``). ``errors="skip"``
never hides a malformed record: fix the file instead. Unreadable bytes and a file
that yields no example are errors naming the file (:mod:`rhlens.tasks.records`).

>>> import json, tempfile, os
>>> d = tempfile.mkdtemp(); p = os.path.join(d, "kv.jsonl")
>>> _ = open(p, "w").write(json.dumps({"ordered_kv_records": [["a", "b"], ["c", "d"]],
...                                    "key": "c", "value": "d"}) + "\\n")
>>> exs = load_lost_in_the_middle_kv(p)
>>> exs[0].answer, exs[0].needle_texts, exs[0].answer_texts, exs.skipped
('d', ('"c": "d"',), ('d',), 0)
"""

import os

from rhlens.tasks import templates
from rhlens.tasks.example import Example
from rhlens.tasks.metrics import rouge1_recall
from rhlens.tasks.records import (
    InWordAnswerError,
    LoadResult,
    MalformedRecordError,
    NeedleNotFoundError,
    NoExamplesError,
    UnreadableFileError,
    get_field,
    iter_records,
    run,
)
from rhlens.tasks.spans import find_answer, find_word, sentence_around, sentence_spans

__all__ = ["LoadResult", "MalformedRecordError", "NeedleNotFoundError", "InWordAnswerError",
           "NoExamplesError", "UnreadableFileError", "iter_records", "find_answer",
           "locate_insight", "load_lost_in_the_middle_qa", "load_lost_in_the_middle_kv",
           "load_musique", "load_summhay"]

_get = get_field


def _locate(docs, indices, candidates, where, field, what):
    """``(doc index, start, end, candidate)`` of the first whole-word candidate in
    ``docs[j][1]`` for ``j`` in ``indices`` (in order); an answer only inside longer
    words raises :class:`InWordAnswerError`, an absent one :class:`NeedleNotFoundError`."""
    for j in indices:
        for cand in candidates:
            hit = find_word(docs[j][1], cand)
            if hit:
                return j, hit[0], hit[1], cand
    for j in indices:
        hit = find_answer(docs[j][1], candidates)
        if hit:
            s, e, cand, _ = hit
            text = docs[j][1]
            while e < len(text) and text[e].isalnum():
                e += 1
            raise where.in_word(field, f"{cand!r} occurs in {what} only inside the longer word "
                                       f"{text[s:e]!r}, not as a word of its own")
    raise where.missing(field, f"none of {candidates!r:.80} occurs in {what}")


def _evidence(prompt, start, end, text_start, text_end):
    """The needle around the answer at ``prompt[start:end]``: the sentence(s) of the
    document text ``prompt[text_start:text_end]`` holding it, or the whole text when
    that sentence is the answer alone."""
    s, e = sentence_around(prompt, start, end, text_start, text_end)
    if prompt[s:e].strip(" .!?\"'") == prompt[start:end].strip(" .!?\"'"):
        return text_start, text_end
    return s, e


def _assemble(task, docs, question, instruction):
    """Render ``docs`` = [(title or None, text)]; returns (prompt, text_starts, id_spans),
    ``id_spans[i]`` being the ``[i]`` identifier in document i's header."""
    head = templates.head(task, instruction)
    parts, starts, ids, pos = [head], [], [], len(head)
    for i, (title, text) in enumerate(docs):
        if i:
            parts.append("\n")
            pos += 1
        header = templates.document_header(i + 1, title)
        a, b = templates.id_span(i + 1, title)
        ids.append((pos + a, pos + b))
        parts.append(header)
        pos += len(header)
        starts.append(pos)
        parts.append(text)
        pos += len(text)
    parts.append(templates.tail(question))
    return "".join(parts), starts, ids


def _select(n_total, keep, n_docs):
    """Indices to keep: all of ``keep`` plus the first others, up to ``n_docs``, in order."""
    if n_docs is None or n_docs >= n_total:
        return list(range(n_total))
    if n_docs < 1:
        raise ValueError(f"n_docs={n_docs} must be >= 1")
    others = [i for i in range(n_total) if i not in keep][: max(0, n_docs - len(keep))]
    return sorted(set(keep) | set(others))


def _source(name, where, instruction, **extra):
    return {"source": name, "file": os.path.basename(where.path), where.unit: where.n,
            **extra, "instruction": instruction}


def load_lost_in_the_middle_qa(path, *, n_docs=None, errors="raise", instruction=True,
                               strict=False):
    """Lost-in-the-middle multi-document QA (``nq-open-*.jsonl.gz``) as ``mdqa`` examples.

    ``n_docs`` keeps the gold context and the first other contexts, in file order.
    The found answer becomes ``answer`` (the others ``aliases``) and its span the
    answer span; the needle is the sentence of that context holding it (the whole
    context when that sentence is the answer alone). ``strict``: see
    :func:`rhlens.tasks.records.run`.
    """

    def build(where, rec):
        question = _get(rec, "question", str, where)
        answers = _get(rec, "answers", list, where)
        if not answers or not all(isinstance(a, str) for a in answers):
            raise where.malformed("answers", "must be a non-empty list of strings")
        ctxs = _get(rec, "ctxs", list, where)
        if not ctxs:
            raise where.malformed("ctxs", "must hold at least one context")
        for i, c in enumerate(ctxs):
            _get(c, "text", str, where, f"ctxs[{i}].")
            if not isinstance(c.get("title", ""), str):
                raise where.malformed(f"ctxs[{i}].title", "must be a string")
        gold = next((i for i, c in enumerate(ctxs) if c.get("isgold")), None)
        if gold is None:
            gold = next((i for i, c in enumerate(ctxs) if c.get("hasanswer")), None)
        if gold is None:
            raise where.missing("ctxs", "no context is marked isgold or hasanswer")
        keep = _select(len(ctxs), [gold], n_docs)
        docs = [(ctxs[i].get("title", ""), ctxs[i]["text"]) for i in keep]
        prompt, starts, _ = _assemble("mdqa", docs, question, instruction)
        search = [keep.index(gold)] + [j for j, i in enumerate(keep)
                                       if i != gold and ctxs[i].get("hasanswer")]
        j, s, e, ans = _locate(docs, search, answers, where, "answers",
                               f"the gold context ctxs[{gold}] or another hasanswer context")
        span = (starts[j] + s, starts[j] + e)
        needle = _evidence(prompt, *span, starts[j], starts[j] + len(docs[j][1]))
        meta = _source("lost_in_the_middle_qa", where, instruction, gold_doc=keep.index(gold),
                       needle_doc=j, n_docs=len(keep))
        return [Example(prompt, ans.strip(), (needle,), "mdqa", "real",
                        tuple(a for a in answers if a != ans), meta, (span,)).validate()]

    return run(path, errors, build, strict=strict)


def load_lost_in_the_middle_kv(path, *, n_pairs=None, errors="raise", instruction=True):
    """Lost-in-the-middle key-value retrieval (``kv-retrieval-*.jsonl.gz``) as ``kv`` examples.

    ``n_pairs`` keeps the gold pair and the first other pairs, in file order. The
    needle is the whole gold pair as rendered, the answer span the value inside it.
    """

    def build(where, rec):
        records = _get(rec, "ordered_kv_records", list, where)
        key = _get(rec, "key", str, where)
        value = _get(rec, "value", str, where)
        for i, kv in enumerate(records):
            if not (isinstance(kv, list) and len(kv) == 2 and all(isinstance(x, str) for x in kv)):
                raise where.malformed(f"ordered_kv_records[{i}]", "must be a [key, value] pair of strings")
        gold = next((i for i, kv in enumerate(records) if kv[0] == key), None)
        if gold is None:
            raise where.missing("key", f"{key!r} is not a key of ordered_kv_records")
        if records[gold][1] != value:
            raise where.malformed("value", f"{value!r} differs from the record's value {records[gold][1]!r}")
        keep = _select(len(records), [gold], n_pairs)
        pairs = [tuple(records[i]) for i in keep]
        g = keep.index(gold)
        prompt, spans, pair_spans = templates.kv_prompt(pairs, key, instruction=instruction)
        if prompt[spans[g][0]:spans[g][1]] != value:
            raise where.missing("value", f"{value!r} needs JSON escaping; the answer span would not equal it")
        meta = _source("lost_in_the_middle_kv", where, instruction, gold_pair=g,
                       n_pairs=len(pairs), key=key)
        return [Example(prompt, value, (pair_spans[g],), "kv", "real", (), meta,
                        (spans[g],)).validate()]

    return run(path, errors, build)


def load_musique(path, *, n_docs=None, errors="raise", instruction=True, strict=False):
    """MuSiQue (official JSONL) as ``musique`` examples, one needle per hop: the
    sentence of the hop's supporting paragraph holding the hop's answer.

    ``n_docs`` keeps the supporting paragraphs and the first other paragraphs.
    Unanswerable records (``answerable: false``) have no needle: error or skip.
    The answer span is the answer in the last hop's paragraph (inside its needle); when
    only an alias occurs there, that alias becomes ``answer`` and the record's
    answer an alias. ``strict``: see :func:`rhlens.tasks.records.run`.
    """

    def build(where, rec):
        paragraphs = _get(rec, "paragraphs", list, where)
        question = _get(rec, "question", str, where)
        answer = _get(rec, "answer", str, where).strip()
        aliases = rec.get("answer_aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise where.malformed("answer_aliases", "must be a list of strings")
        decomposition = _get(rec, "question_decomposition", list, where)
        if not decomposition:
            raise where.malformed("question_decomposition", "must list at least one hop")
        by_idx = {}
        for i, p in enumerate(paragraphs):
            idx = _get(p, "idx", int, where, f"paragraphs[{i}].")
            _get(p, "paragraph_text", str, where, f"paragraphs[{i}].")
            if not isinstance(p.get("title", ""), str):
                raise where.malformed(f"paragraphs[{i}].title", "must be a string")
            by_idx[idx] = i
        if rec.get("answerable") is False:
            raise where.missing("answerable", "the record is unanswerable: it has no needle")
        support = []
        for h, hop in enumerate(decomposition):
            _get(hop, "answer", str, where, f"question_decomposition[{h}].")
            sidx = _get(hop, "paragraph_support_idx", int, where, f"question_decomposition[{h}].")
            if sidx not in by_idx:
                raise where.malformed(f"question_decomposition[{h}].paragraph_support_idx",
                                      f"{sidx} is not the idx of any paragraph")
            support.append(by_idx[sidx])
        keep = _select(len(paragraphs), support, n_docs)
        docs = [(paragraphs[i].get("title", ""), paragraphs[i]["paragraph_text"]) for i in keep]
        prompt, starts, _ = _assemble("musique", docs, question, instruction)
        needles, last, span = [], len(decomposition) - 1, None
        for h, (hop, pi) in enumerate(zip(decomposition, support)):
            cands = [hop["answer"]] if h < last else [answer, hop["answer"], *aliases]
            j, s, e, found = _locate(docs, [keep.index(pi)], cands, where,
                                     f"question_decomposition[{h}].answer",
                                     f"its supporting paragraph idx {paragraphs[pi]['idx']}")
            span = (starts[j] + s, starts[j] + e)
            needles.append(_evidence(prompt, *span, starts[j], starts[j] + len(docs[j][1])))
        if found.strip() != answer:  # only an alias is in the context: answer with it
            aliases = [answer] + [a for a in aliases if a.strip() != found.strip()]
            answer = found.strip()
        meta = _source("musique", where, instruction, id=rec.get("id"), hops=len(decomposition),
                       gold_docs=[keep.index(pi) for pi in support], n_docs=len(keep),
                       hop_answers=[h["answer"] for h in decomposition])
        return [Example(prompt, answer, tuple(needles), "musique", "real",
                        tuple(a for a in aliases if a.strip() != answer), meta,
                        (span,)).validate()]

    return run(path, errors, build, strict=strict)


def locate_insight(text: str, insight: str, *, max_sentences: int = 3, min_recall: float = 0.5):
    """Locate a (paraphrased) insight: ``(start, end, recall)`` of the shortest window
    of consecutive sentences whose ROUGE-1 recall of the insight reaches
    ``min_recall`` (the best window of that size); when no window of up to
    ``max_sentences`` sentences does, the best one found (recall < min_recall).
    A verbatim (case-insensitive) occurrence wins with recall 1.0.

    >>> t = "Cars are fast. The Demon runs on E85 fuel for more power. Rain."
    >>> s, e, r = locate_insight(t, "The Demon uses E85 fuel for more power.")
    >>> t[s:e], round(r, 2)
    ('The Demon runs on E85 fuel for more power.', 0.88)
    """
    low = insight.lower()
    i = text.lower().find(low)
    if i >= 0:
        return i, i + len(insight), 1.0
    sents = sentence_spans(text)
    overall = (0.0, 0, 0)
    for size in range(1, max_sentences + 1):
        best = (0.0, 0, 0)
        for a in range(len(sents) - size + 1):
            s, e = sents[a][0], sents[a + size - 1][1]
            r = rouge1_recall(insight, text[s:e])
            if r > best[0] + 1e-12:
                best = (r, s, e)
        if best[0] >= min_recall:
            return best[1], best[2], best[0]
        if best[0] > overall[0] + 1e-12:
            overall = best
    return overall[1], overall[2], overall[0]


def load_summhay(path, *, n_docs=None, errors="raise", instruction=True, min_recall=0.5,
                 max_sentences=3):
    """SummHay haystacks as ``summhay`` citation examples, one per included insight.

    ``n_docs`` keeps the citing documents and the first other documents. A
    citing document whose best window recalls less than ``min_recall`` of the
    insight makes the example's needle missing (error, or skip; the haystack's
    other insights are kept). Each needle is that window, widened to whole
    sentences when the insight occurs verbatim inside one. The answer spans are the cited documents' ``[i]``
    identifiers in their ``Document [i]`` headers, which the answer copies.
    """

    def build(where, rec):
        documents = _get(rec, "documents", list, where)
        subtopics = _get(rec, "subtopics", list, where)
        for i, d in enumerate(documents):
            _get(d, "document_text", str, where, f"documents[{i}].")
            inc = _get(d, "insights_included", list, where, f"documents[{i}].")
            if not all(isinstance(x, str) for x in inc):
                raise where.malformed(f"documents[{i}].insights_included", "must list insight ids")
        insights = []
        for i, st in enumerate(subtopics):
            for j, ins in enumerate(_get(st, "insights", list, where, f"subtopics[{i}].")):
                p = f"subtopics[{i}].insights[{j}]."
                insights.append((st.get("subtopic_id"), _get(ins, "insight_id", str, where, p),
                                 _get(ins, "insight", str, where, p)))
        out, problems = [], []
        for subtopic_id, insight_id, insight in insights:
            citing = [i for i, d in enumerate(documents) if insight_id in d["insights_included"]]
            if not citing:
                continue
            keep = _select(len(documents), citing, n_docs)
            docs = [(None, documents[i]["document_text"]) for i in keep]
            question = templates.summhay_question(insight)
            prompt, starts, id_spans = _assemble("summhay", docs, question, instruction)
            needles, recalls, bad = [], [], []
            for i in citing:
                j = keep.index(i)
                s, e, r = locate_insight(docs[j][1], insight, max_sentences=max_sentences,
                                         min_recall=min_recall)
                recalls.append(round(r, 4))
                if r < min_recall:
                    bad.append(f"documents[{i}] (best recall {r:.2f})")
                # a verbatim insight inside a longer sentence: the needle is that sentence
                s, e = sentence_around(docs[j][1], s, e)
                needles.append((starts[j] + s, starts[j] + e))
            if bad:
                msg = f"insight {insight_id}: not found in {', '.join(bad)}"
                problems.append((where.missing("subtopics.insights", msg), f"{where}: {msg}"))
                continue
            ids = [keep.index(i) + 1 for i in citing]  # ascending, as the answer lists them
            meta = _source("summhay", where, instruction, topic_id=rec.get("topic_id"),
                           subtopic_id=subtopic_id, insight_id=insight_id, insight=insight,
                           cited_ids=ids, gold_docs=[i - 1 for i in ids], n_docs=len(keep),
                           document_ids=[documents[i].get("document_id") for i in keep],
                           needle_recall=recalls)
            out.append(Example(prompt, templates.format_citations(ids), tuple(needles), "summhay",
                               "real", (), meta, tuple(id_spans[i - 1] for i in ids)).validate())
        if problems:
            err = problems[0][0]
            err.problems, err.partial = problems, out
            raise err
        return out

    return run(path, errors, build)
