"""Multi-document QA: N titled documents, one gold document holding the answer.

The question asks one relation about the gold document's subject. Documents
hold several sentences; the needle is the gold document's fact sentence (the
evidence), and the answer span is the answer inside it (what a retrieval head
copies). ``position`` chooses the gold document (0-based index or depth fraction).

>>> from rhlens.tasks import generate
>>> ex = generate("mdqa", "realistic", n=1, context_tokens=128, seed=1, position=0)[0]
>>> ex.meta["gold_doc"], ex.answer_texts == (ex.answer,), ex.needle_texts[0].endswith(ex.answer + ".")
(0, True, True)
"""

import random

from rhlens.tasks.generators.common import (DocSpec, ExampleSpec, Generated, Needle, build_documents, haystack_stream,
                                           question_fact, question_text, resolve_index)


def generate_one(spec: ExampleSpec, rng: random.Random) -> Generated:
    n_docs = spec.default_n_docs(2)
    gold = resolve_index(spec.position, n_docs, rng)
    exclude: set[str] = set()
    rel, subject, kind, fact = question_fact(spec, rng, exclude)
    exclude |= {subject, fact.answer}
    docs = []
    titles: list[str] = []
    for i in range(n_docs):
        stream_rng = random.Random(rng.getrandbits(64))
        if i == gold:
            title, t_kind = subject, kind
            stream = haystack_stream(spec, stream_rng, subject, kind, frozenset(exclude - {subject}),
                                     skip_relations={rel.name}, title=title)
            doc = DocSpec(title, stream, [Needle(fact.text, ((0, len(fact.text)),))],
                          insert_frac=rng.random())
        else:
            t_kind = kind if spec.realism == "symbolic" else rng.choice(spec.world.subject_kinds())
            title, t_kind = spec.world.fresh_entity(t_kind, rng, exclude | set(titles),
                                                    chunks=spec.knobs.get("key_chunks", 2))
            stream = haystack_stream(spec, stream_rng, title, t_kind, frozenset(exclude), title=title)
            doc = DocSpec(title, stream)
        titles.append(title)
        docs.append(doc)
    question = question_text(spec, rel, subject)
    r, n_tokens = build_documents(spec, docs, question, what="mdqa prompt")
    meta = spec.meta(n_docs=n_docs, gold_doc=gold, relation=rel.name, subject=subject,
                  n_tokens=n_tokens, doc_spans=r.doc_spans, titles=titles)
    # the needle is the gold fact sentence; a retrieval head copies the answer inside it
    (start, _), = r.needles
    return Generated(r.prompt, fact.answer, tuple(r.needles), ((start + fact.start, start + fact.end),), meta)
