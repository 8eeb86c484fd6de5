"""Multi-hop QA: a chain of 2-4 relations whose facts sit in different documents.

The question nests the relations ("Where was the spouse of X born?"); needles
are every hop's fact sentence, in hop order (the evidence); the answer span is
the answer inside the last hop's sentence. ``position`` chooses
the document of the first hop; the other hops go to random other documents.
Knob ``hops``: an int or an ``(lo, hi)`` range (default 2 below 256 tokens,
else (2, 4)).

>>> from rhlens.tasks import generate
>>> ex = generate("musique", "realistic", n=1, context_tokens=256, seed=3, hops=3)[0]
>>> len(ex.needles), ex.answer in ex.needle_texts[-1], ex.answer_texts == (ex.answer,)
(3, True, True)
"""

import random

from rhlens.tasks.generators.common import DocSpec, ExampleSpec, Generated, Needle, build_documents, haystack_stream, resolve_index


def _feasible(world, kind, remaining):
    if remaining == 0:
        return True
    return any(_feasible(world, r.object, remaining - 1) for r in world.relations_from(kind))


def sample_chain(world, rng, hops):
    """Relations r1..rh with r_{i+1}.subject == r_i.object, starting from a person or org."""
    kind = "symbol" if world.realism == "symbolic" else rng.choice(["person", "person", "org"])
    chain = []
    for h in range(hops):
        options = [r for r in world.relations_from(kind) if _feasible(world, r.object, hops - h - 1)]
        rel = rng.choice(options)
        chain.append(rel)
        kind = rel.object
    return chain


def _hops(spec: ExampleSpec, rng):
    hops = spec.knobs.get("hops")
    if hops is None:
        hops = 2 if spec.context_tokens < 256 else (2, 4)
    if isinstance(hops, (tuple, list)):
        lo, hi = hops
        hops = rng.randint(lo, hi)
    if not isinstance(hops, int) or hops < 1:
        raise ValueError(f"hops={hops!r} must be a positive int or an (lo, hi) range")
    return hops


def generate_one(spec: ExampleSpec, rng: random.Random) -> Generated:
    world = spec.world
    hops = _hops(spec, rng)
    n_docs = spec.default_n_docs(hops)
    first = resolve_index(spec.position, n_docs, rng)
    others = [i for i in range(n_docs) if i != first]
    rng.shuffle(others)
    hop_docs = [first] + others[: hops - 1]
    chain = sample_chain(world, rng, hops)
    chunks = spec.knobs.get("key_chunks", 2)
    exclude: set[str] = set()
    subject = world.entity(chain[0].subject, rng, exclude, chunks=chunks)
    exclude.add(subject)
    facts, subjects = [], [subject]
    for rel in chain:
        obj = world.entity(rel.object, rng, exclude, chunks=chunks)
        exclude.add(obj)
        facts.append(world.fact(rel, subjects[-1], obj))
        subjects.append(obj)
    docs: list[DocSpec] = []
    titles: list[str] = []
    for i in range(n_docs):
        stream_rng = random.Random(rng.getrandbits(64))
        if i in hop_docs:
            h = hop_docs.index(i)
            title, kind, fact = subjects[h], chain[h].subject, facts[h]
            stream = haystack_stream(spec, stream_rng, title, kind, frozenset(exclude - {title}),
                                     skip_relations={chain[h].name}, title=title)
            doc = DocSpec(title, stream, [Needle(fact.text, ((0, len(fact.text)),))],
                          insert_frac=rng.random())
        else:
            kind = "symbol" if spec.realism == "symbolic" else rng.choice(world.subject_kinds())
            title, kind = world.fresh_entity(kind, rng, exclude | set(titles), chunks=chunks)
            doc = DocSpec(title, haystack_stream(spec, stream_rng, title, kind, frozenset(exclude),
                                                 title=title))
        titles.append(title)
        docs.append(doc)
    phrase = subjects[0]
    for rel in chain[:-1]:
        phrase = rel.phrase.format(s=phrase)
    question = chain[-1].question.format(s=phrase)
    r, n_tokens = build_documents(spec, docs, question, what="musique prompt")
    # needles come out in document order; report them in hop order
    by_doc = {d: span for d, span in zip(sorted(hop_docs), r.needles)}
    needles = tuple(by_doc[d] for d in hop_docs)
    meta = spec.meta(n_docs=n_docs, hops=hops, gold_docs=hop_docs, gold_doc=first,
                  relations=[x.name for x in chain], hop_answers=[f.answer for f in facts],
                  n_tokens=n_tokens, doc_spans=r.doc_spans, titles=titles)
    # the last hop's answer is the answer: the one span a retrieval head copies
    start = needles[-1][0]
    return Generated(r.prompt, facts[-1].answer, needles, ((start + facts[-1].start, start + facts[-1].end),), meta)
