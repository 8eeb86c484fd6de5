"""SummHay-style citation: documents with ids, some stating the same insight.

The question names the insight; the answer lists the ids of the documents that
state it, as ``"[2] [5]"`` (ascending, 1-based as printed in the headers).
Needles are the insight sentence's span in each citing document (the text that
makes a document citable); the answer spans are the citing documents' ``[i]``
identifiers in their ``Document [i]`` headers, which the answer copies (a perfect
response copies exactly those tokens).
``position`` chooses the first citing document; knob ``n_citing`` (default 1
below 128 tokens, 2 below 1024, else 3) how many documents cite.

>>> from rhlens.tasks import generate
>>> ex = generate("summhay", "realistic", n=1, context_tokens=256, seed=0, n_citing=2)[0]
>>> ex.answer.count("[") == 2 == len(ex.needles), " ".join(ex.answer_texts) == ex.answer
(True, True)
"""

import random

from rhlens.tasks.generators.common import (DocSpec, ExampleSpec, Generated, Needle, build_documents, haystack_stream,
                                           question_fact, resolve_index)
from rhlens.tasks.templates import format_citations, summhay_question


def generate_one(spec: ExampleSpec, rng: random.Random) -> Generated:
    world = spec.world
    n_citing = spec.knobs.get("n_citing")
    if n_citing is None:
        n_citing = 1 if spec.context_tokens < 128 else 2 if spec.context_tokens < 1024 else 3
    if not isinstance(n_citing, int) or n_citing < 1:
        raise ValueError(f"n_citing={n_citing!r} must be a positive int")
    n_docs = spec.default_n_docs(n_citing + 1)
    first = resolve_index(spec.position, n_docs, rng)
    others = [i for i in range(n_docs) if i != first]
    rng.shuffle(others)
    citing = sorted([first] + others[: n_citing - 1])
    exclude: set[str] = set()
    _rel, subject, _kind, insight = question_fact(spec, rng, exclude)
    exclude |= {subject, insight.answer}
    docs = []
    chunks = spec.knobs.get("key_chunks", 2)
    for i in range(n_docs):
        stream_rng = random.Random(rng.getrandbits(64))
        kind = "symbol" if spec.realism == "symbolic" else rng.choice(world.subject_kinds())
        about = world.entity(kind, rng, exclude, chunks=chunks)
        stream = haystack_stream(spec, stream_rng, about, kind, frozenset(exclude), title=about)
        fixed = [Needle(insight.text, ((0, len(insight.text)),))] if i in citing else []
        docs.append(DocSpec(None, stream, fixed, insert_frac=rng.random()))
    question = summhay_question(insight.text)
    r, n_tokens = build_documents(spec, docs, question, what="summhay prompt")
    ids = [i + 1 for i in citing]
    meta = spec.meta(n_docs=n_docs, n_citing=n_citing, gold_docs=citing, gold_doc=first,
                  cited_ids=ids, insight=insight.text, n_tokens=n_tokens,
                  doc_spans=r.doc_spans)
    answer_spans = tuple(r.id_spans[i] for i in citing)  # ascending, as the answer lists them
    return Generated(r.prompt, format_citations(ids), tuple(r.needles), answer_spans, meta)
