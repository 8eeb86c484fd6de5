"""Shared machinery for the synthetic generators: variants, settings, haystack
streams and the document-prompt builder that fits a target length.

>>> VARIANTS
('realistic', 'realistic-filler', 'fictional', 'fictional-filler', 'symbolic')
>>> variant_axes("fictional-filler")
('fictional', 'filler')
>>> resolve_index(0.5, 5, None), resolve_index(3, 5, None)
(2, 3)
"""

import random
from dataclasses import dataclass, field
from typing import Any, Callable

from rhlens.tasks import templates, wordlists
from rhlens.tasks.fitting import fit_length
from rhlens.tasks.spans import find_word
from rhlens.tasks.vocab import MAX_DOCS, pretokenize, token_counter, tokenizer_name
from rhlens.tasks.world import World, get_world

# name -> (needle realism, haystack diversity)
_VARIANT_AXES = {
    "realistic": ("realistic", "varied"),
    "realistic-filler": ("realistic", "filler"),
    "fictional": ("fictional", "varied"),
    "fictional-filler": ("fictional", "filler"),
    "symbolic": ("symbolic", "symbolic"),
}
VARIANTS = tuple(_VARIANT_AXES)


def variant_axes(variant: str) -> tuple:
    """``(realism, haystack)`` for a variant name."""
    try:
        return _VARIANT_AXES[variant]
    except KeyError:
        raise ValueError(f"variant={variant!r} is not one of {VARIANTS}") from None


def question_fact(spec: "ExampleSpec", rng, exclude):
    """Sample (relation, subject, subject_kind, fact) for a single-relation question
    (mdqa's question, niah's needle, summhay's insight)."""
    world = spec.world
    if spec.realism == "symbolic":
        kind = "symbol"
    else:
        kind = rng.choice(world.subject_kinds())
    rel = rng.choice(world.relations_from(kind))
    chunks = spec.knobs.get("key_chunks", 2)
    subject = world.entity(kind, rng, exclude, chunks=chunks)
    obj = world.entity(rel.object, rng, exclude | {subject}, chunks=chunks)
    return rel, subject, kind, world.fact(rel, subject, obj)


#: how a question asks about its fact (the ``question_form`` knob): ``template``, the relation's question
#: (``In which country is Turin?``), which every generated training set uses; ``paraphrase``, a
#: held-out form built from the relation's noun phrase (``What is the country of Turin?``), for a
#: real-data stand-in whose questions no synthetic set phrases (symbolic facts have one form only)
QUESTION_FORMS = ("template", "paraphrase")
#: the tasks whose question the ``question_form`` knob phrases (MuSiQue nests phrases already; SummHay
#: and key-value retrieval ask in one fixed form)
QUESTION_TASKS = ("mdqa", "niah")


def question_text(spec: "ExampleSpec", rel, subject: str) -> str:
    """The question about ``rel`` of ``subject`` in the form the ``question_form`` knob names.

    >>> from rhlens.tasks.world import RELATIONS
    >>> spec = ExampleSpec("mdqa", "realistic", 64, None, 0, 0, None, False, None, {"question_form": "paraphrase"})
    >>> country = next(r for r in RELATIONS if r.name == "country")
    >>> question_text(spec, country, "Turin")
    'What is the country of Turin?'
    """
    form = spec.knobs.get("question_form", "template")
    if form == "template":
        return rel.question.format(s=subject)
    if form == "paraphrase":
        return f"What is {rel.phrase.format(s=subject)}?"
    raise ValueError(f"question_form={form!r} is not one of {QUESTION_FORMS}")


def resolve_index(position, n: int, rng) -> int:
    """Document index for ``position``: None (random), an int index, or a depth fraction."""
    if position is None:
        return rng.randrange(n)
    if isinstance(position, bool):
        raise ValueError(f"position must be an int index or a float in [0, 1], got {position!r}")
    if isinstance(position, int):
        if not 0 <= position < n:
            raise ValueError(f"position={position} is outside the {n} documents (0..{n - 1})")
        return position
    if isinstance(position, float):
        if not 0.0 <= position <= 1.0:
            raise ValueError(f"position={position} must be a depth fraction in [0, 1]")
        return int(round(position * (n - 1)))
    raise ValueError(f"position must be None, an int index or a float in [0, 1], got {position!r}")


Span = tuple[int, int]
"""A ``[start, end)`` character span of the prompt."""


@dataclass(frozen=True)
class Generated:
    """What a task's ``generate_one`` returns: one example's text and spans, before it becomes an
    :class:`rhlens.tasks.Example` (which adds the task, the variant and validation).

    Attributes:
        prompt: the whole prompt; it ends where the answer starts.
        answer: the gold answer.
        needles: the needles' character spans in ``prompt`` (the evidence).
        answer_spans: the answer's character spans inside the needles (what a retrieval head
            copies; SummHay: the cited documents' ``[i]`` ids), in answer order.
        meta: the knobs and facts of this example (JSON-serialisable).
    """

    prompt: str
    answer: str
    needles: tuple[Span, ...]
    answer_spans: tuple[Span, ...]
    meta: dict[str, Any]


@dataclass
class ExampleSpec:
    """What one example is to be: task, variant, length, tokenizer, seed, index and knobs, with the
    world and token counter they imply (built by ``generate``, read by each task's ``generate_one``)."""

    task: str
    variant: str
    context_tokens: int
    tokenizer: Any
    seed: int
    index: int
    position: "int | float | None"
    instruction: bool
    documents: Any
    knobs: dict[str, Any]
    realism: str = field(init=False, default="")
    haystack: str = field(init=False, default="")
    count: Callable[[str], int] = field(init=False, repr=False, default=len)
    world: World = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.realism, self.haystack = variant_axes(self.variant)
        self.count = token_counter(self.tokenizer)
        self.world = get_world(self.realism)
        if self.documents is not None and self.haystack != "varied":
            raise ValueError(
                f"documents= (LLM-written haystack) needs a varied-haystack variant, "
                f"not {self.variant!r}; use 'realistic' or 'fictional'")

    def meta(self, **extra: Any) -> dict[str, Any]:
        m = {"seed": self.seed, "index": self.index, "context_tokens": self.context_tokens,
             "tokenizer": tokenizer_name(self.tokenizer), "realism": self.realism,
             "haystack": self.haystack, "position": self.position,
             "instruction": self.instruction,
             "documents": None if self.documents is None else type(self.documents).__name__}
        m.update({k: v for k, v in self.knobs.items()})
        m.update(extra)
        return m

    def default_n_docs(self, min_docs: int) -> int:
        n = self.knobs.get("n_docs")
        if n is None:
            n = max(min_docs, self.context_tokens // 100)
        if not isinstance(n, int) or isinstance(n, bool) or n < min_docs:
            raise ValueError(f"n_docs={n!r} must be an int >= {min_docs} for task {self.task!r}")
        if n > MAX_DOCS:
            raise ValueError(f"n_docs={n} exceeds MAX_DOCS={MAX_DOCS} (the vocabulary's ids)")
        return n


class SentenceStream:
    """A lazily extended list of sentences drawn from ``next_sentence()``."""

    def __init__(self, next_sentence):
        self._next = next_sentence
        self.items = []

    def get(self, i: int) -> str:
        while len(self.items) <= i:
            self.items.append(self._next())
        return self.items[i]


def filler_stream() -> SentenceStream:
    it = iter(range(1 << 62))
    return SentenceStream(lambda: wordlists.FILLER_SENTENCES[next(it) % len(wordlists.FILLER_SENTENCES)])


class _MixedSubjects:
    """``next_sentence()`` of a haystack about no one subject: background sentences about a fresh
    subject every 2-5 sentences. Once every subject is used (long contexts), a subject returns and
    goes on from the relations it already stated, so it never gets two objects for one."""

    def __init__(self, world: World, rng: random.Random, exclude):
        self.world, self.rng, self.exclude = world, rng, exclude
        self.left, self.subject, self.kind = 0, None, None
        self.stated: set = set()
        self.seen = set(exclude)
        self.stated_of: dict = {}

    def __call__(self):
        world, rng = self.world, self.rng
        if self.left == 0:
            kinds = world.subject_kinds()
            self.kind = rng.choice(kinds)
            try:
                self.subject, self.kind = world.fresh_entity(self.kind, rng, self.seen)
            except ValueError:
                self.subject = world.entity(self.kind, rng, self.exclude)
            self.seen.add(self.subject)  # a subject's facts stay in one stretch while fresh ones last
            self.stated = self.stated_of.setdefault(self.subject, set())
            self.left = rng.randint(2, 5)
        self.left -= 1
        return world.background(self.subject, self.kind, rng, self.exclude, stated=self.stated)


def haystack_stream(spec: ExampleSpec, rng: random.Random, subject, kind, exclude,
                    skip_relations=frozenset(), title=None) -> SentenceStream:
    """The haystack sentences of one document (or of the whole niah haystack).

    ``subject`` is the entity the document is about (None: a stream that
    switches between fresh subjects every few sentences).
    """
    if spec.haystack == "filler":
        return filler_stream()
    if spec.documents is not None:
        return llm_stream(spec.documents, title if title is not None else (subject or "a town"),
                          exclude)
    world = spec.world
    if subject is not None:
        stated: set[str] = set()
        return SentenceStream(lambda: world.background(subject, kind, rng, exclude,
                                                       skip_relations, stated))
    return SentenceStream(_MixedSubjects(world, rng, exclude))


def mentions(sentence: str, exclude) -> bool:
    """Whether ``sentence`` names any of ``exclude`` as whole words (case-insensitive).

    >>> mentions("Ann moved to Rome.", {"rome"}), mentions("Romeo left.", {"Rome"})
    (True, False)
    """
    return any(find_word(sentence, e) is not None for e in exclude if isinstance(e, str) and e)


class _LLMSentences:
    """``next_sentence()`` of :func:`llm_stream`: the next sentence of the parts ``source`` writes
    about ``title`` that mentions none of ``exclude``."""

    def __init__(self, source, title: str, exclude):
        self.source, self.title, self.exclude = source, title, exclude
        self.part, self.dropped = 0, 0
        self.buffer: list[str] = []

    def __call__(self):
        for _ in range(100):
            while self.buffer:
                sentence = self.buffer.pop(0)
                if not mentions(sentence, self.exclude):
                    return sentence
                self.dropped += 1
            self.buffer = list(self.source.sentences(self.title, self.part))
            self.part += 1
        raise IndexError(f"the document source wrote no usable sentences about {self.title!r} in "
                         f"100 parts ({self.dropped} dropped for naming the answer or "
                         f"needle entities {sorted(self.exclude)!r:.80})")


def llm_stream(source, title: str, exclude=frozenset()) -> SentenceStream:
    """Sentences of LLM-written documents about ``title``, part after part, without
    any sentence that mentions ``exclude`` (the answer and needle entities, which the
    world-built haystack never states either), whether written now or cached."""
    return SentenceStream(_LLMSentences(source, title, exclude))


@dataclass
class Needle:
    """A fixed sentence placed in a document with needle spans relative to it."""

    text: str
    spans: tuple  # ((start, end), ...) relative to ``text``


@dataclass
class DocSpec:
    title: object  # str or None (no title in the header)
    stream: SentenceStream
    fixed: list = field(default_factory=list)  # list[Needle]
    insert_frac: float = 0.5


@dataclass
class Rendered:
    prompt: str
    needles: list  # absolute spans, in document order then fixed order
    doc_spans: list  # [start, end) of each whole document line
    id_spans: list  # [start, end) of each header's "[i]" identifier (what a citation copies)
    fillers: list  # number of haystack sentences per document


def _words_prefix(sentence: str, n: int) -> str:
    return " ".join(sentence.split()[:n])


class _DocumentLayout:
    """The document prompt as ``render(k, f)``: haystack sentences go to the document with the
    fewest estimated tokens (``order`` lists, sentence by sentence, which document took it), then
    ``render`` writes the first ``k`` of them and ``f`` words of the next, around the needles."""

    def __init__(self, spec: ExampleSpec, docs: list, question: str):
        self.docs = docs
        self.order: list[int] = []
        self.est = [sum(len(pretokenize(n.text)) for n in d.fixed) for d in docs]
        self.used = [0] * len(docs)
        self.head = templates.head(spec.task, spec.instruction)
        self.tail = templates.tail(question)

    def ensure(self, n):
        docs, est, used = self.docs, self.est, self.used
        while len(self.order) < n:
            d = min(range(len(docs)), key=lambda i: (est[i], i))
            sentence = docs[d].stream.get(used[d])
            used[d] += 1
            est[d] += len(pretokenize(sentence)) + 1
            self.order.append(d)

    def render(self, k, f):
        docs, order = self.docs, self.order
        self.ensure(k + (1 if f else 0))
        counts = [0] * len(docs)
        for d in order[:k]:
            counts[d] += 1
        partial_doc = order[k] if f else None
        parts, needles, doc_spans, id_spans = [self.head], [], [], []
        pos = len(self.head)
        for i, d in enumerate(docs):
            if i:
                parts.append("\n")
                pos += 1
            header = templates.document_header(i + 1, d.title)
            start = pos
            a, b = templates.id_span(i + 1, d.title)
            id_spans.append((pos + a, pos + b))
            parts.append(header)
            pos += len(header)
            whole = [d.stream.get(j) for j in range(counts[i])]
            at = int(round(d.insert_frac * len(whole)))
            pieces = [(t, None) for t in whole[:at]] + [(n.text, n) for n in d.fixed]
            pieces += [(t, None) for t in whole[at:]]
            if partial_doc == i:
                words = _words_prefix(d.stream.get(counts[i]), f)
                if words:
                    pieces.append((words, None))
            for j, (text, needle) in enumerate(pieces):
                if j:
                    parts.append(" ")
                    pos += 1
                if needle is not None:
                    needles.extend((pos + a, pos + b) for a, b in needle.spans)
                parts.append(text)
                pos += len(text)
            doc_spans.append((start, pos))
        parts.append(self.tail)
        return Rendered("".join(parts), needles, doc_spans, id_spans, counts)

    def prompt(self, k, f):
        return self.render(k, f).prompt

    def fine_steps(self, k):
        self.ensure(k + 1)
        d = self.order[k]
        used_at = sum(1 for x in self.order[:k] if x == d)
        return max(0, len(self.docs[d].stream.get(used_at).split()) - 1)


def build_documents(spec: ExampleSpec, docs: list, question: str, *, what: str):
    """Fit ``docs`` (with their fixed needle sentences) plus the question to
    ``spec.context_tokens``; returns ``(Rendered, n_tokens)``."""
    layout = _DocumentLayout(spec, docs, question)
    k, f, n = fit_length(layout.prompt, spec.context_tokens, spec.count,
                         fine_steps=layout.fine_steps, what=what)
    return layout.render(k, f), n
