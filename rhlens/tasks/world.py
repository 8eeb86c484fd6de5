"""Entities, relations and background sentences for the three needle-realism levels.

A :class:`World` samples entities (people, cities, organisations, ...) and
renders facts about them from templates. ``realistic`` uses real-looking names
and places, ``fictional`` uses syllable-made names with the same relation
templates, and ``symbolic`` uses random strings from a closed chunk alphabet
with one relation ("The value of K is V.").

>>> import random
>>> w = get_world("realistic")
>>> rng = random.Random(0)
>>> rel = w.relation("born_in")
>>> fact = w.fact(rel, "Maria Lopez", "Lisbon")
>>> fact.text, fact.text[fact.start:fact.end]
('Maria Lopez was born in Lisbon.', 'Lisbon')
>>> rel.question.format(s="Maria Lopez")
'Where was Maria Lopez born?'
"""

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path

from rhlens.tasks import wordlists as W

REALISMS = ("realistic", "fictional", "symbolic")


@dataclass(frozen=True)
class Relation:
    """A templated relation ``subject -> object``.

    ``fact`` has one ``{o}`` slot (the answer) and may use ``{s}`` (subject) and
    ``{art}`` (the article for ``{o}``). ``question`` and ``phrase`` (a noun
    phrase used to nest relations in multi-hop questions) use ``{s}`` only.
    """

    name: str
    subject: str
    object: str
    fact: str
    question: str
    phrase: str


@dataclass(frozen=True)
class Fact:
    """A rendered fact sentence with the answer's [start, end) span in ``text``."""

    text: str
    start: int
    end: int

    @property
    def answer(self) -> str:
        return self.text[self.start:self.end]


def _read_relations(path: Path) -> tuple[Relation, ...]:
    """The relation table ``path`` (tab-separated, a header row naming :class:`Relation`'s fields)."""
    header, *rows = path.read_text(encoding="utf-8").splitlines()
    fields = header.split("\t")
    if fields != [f.name for f in dataclasses.fields(Relation)]:
        raise ValueError(f"{path}: header {fields} must name Relation's fields in order")
    out = []
    for number, row in enumerate(rows, start=2):
        cells = row.split("\t")
        if len(cells) != len(fields):
            raise ValueError(f"{path}:{number}: {len(cells)} cells, expected {len(fields)} ({', '.join(fields)})")
        out.append(Relation(*cells))
    return tuple(out)


# The realistic and fictional worlds' relations: one row each in relations.tsv (edit it to add one).
RELATIONS = _read_relations(Path(__file__).with_name("relations.tsv"))

SYMBOLIC_RELATIONS = (
    Relation("value", "symbol", "symbol", "The value of {s} is {o}.",
             "What is the value of {s}?", "the value of {s}"),
)

# Background templates about a subject of a given type: {s} subject, and slots
# filled from the world's lists ({city}, {country}, {hobby}, {feature},
# {object}, {season}, {person}, {year}, {org}).
BACKGROUND_TEMPLATES = {
    "person": (
        "{s} enjoys {hobby} in the {season}.",
        "{s} has visited {city} many times.",
        "{s} owns {object}.",
        "{s} once gave a talk in {city} about {hobby}.",
        "Friends describe {s} as patient and curious.",
        "{s} spent the {season} of {year} in {country}.",
        "{s} writes letters to {person} every month.",
        "{s} keeps a diary about {hobby}.",
        "In {year} {s} moved to a small flat near the {feature}.",
        "{s} often walks past the {feature} of {city}.",
    ),
    "org": (
        "{s} opened a new office in {city} in {year}.",
        "{s} sponsors a {hobby} club in {city}.",
        "{s} employs many people in {country}.",
        "{s} publishes a yearly report every {season}.",
        "The staff of {s} meet near the {feature} of {city}.",
        "{s} has a partnership with {org}.",
    ),
    "city": (
        "{s} is known for its {feature}.",
        "Many visitors come to {s} in the {season}.",
        "{s} hosted a {hobby} festival in {year}.",
        "The people of {s} are proud of their {feature}.",
        "{s} has a sister city called {city}.",
    ),
    "country": (
        "{s} is famous for its {feature}.",
        "Tourists travel to {s} every {season}.",
        "{s} held a national {hobby} contest in {year}.",
    ),
    "occupation": ("Every {s} in {city} knows about the {feature}.",),
    "year": ("The {season} of {s} was unusually long.",),
}

GENERAL_TEMPLATES = (
    "The {season} festival in {city} draws large crowds.",
    "Travellers often praise the {feature} of {city}.",
    "A new book about {hobby} was published in {year}.",
    "The museum in {city} reopened in {year}.",
    "Local schools in {country} teach {hobby} to children.",
    "Rain fell on {city} for most of the {season}.",
    "The train from {city} to {city2} takes several hours.",
    "A storm closed the {feature} of {city} for a week.",
    "Markets in {country} are busy every {season}.",
    "The {hobby} club of {city} meets on Sundays.",
)

SYMBOLIC_SENTENCE_LEN = (4, 9)


def article(word: str) -> str:
    """Return "an" before a vowel sound, else "a" (simple first-letter rule).

    >>> article("engineer"), article("baker")
    ('an', 'a')
    """
    return "an" if word[:1].lower() in "aeiou" else "a"


class World:
    """Samples entities and renders sentences for one realism level."""

    def __init__(self, realism: str):
        if realism not in REALISMS:
            raise ValueError(f"realism={realism!r} is not one of {REALISMS}")
        self.realism = realism
        fict = realism == "fictional"
        self.first = W.FICT_FIRST_NAMES if fict else W.FIRST_NAMES
        self.last = W.FICT_SURNAMES if fict else W.SURNAMES
        self.lists = {
            "city": W.FICT_CITIES if fict else W.CITIES,
            "country": W.FICT_COUNTRIES if fict else W.COUNTRIES,
            "occupation": W.FICT_OCCUPATIONS if fict else W.OCCUPATIONS,
            "year": W.YEARS,
            "hobby": W.FICT_HOBBIES if fict else W.HOBBIES,
            "feature": W.FICT_FEATURES if fict else W.FEATURES,
            "object": W.FICT_OBJECTS if fict else W.OBJECTS,
            "season": W.SEASONS,
        }
        self.org_stems = W.FICT_ORG_STEMS if fict else W.ORG_STEMS
        self.org_suffixes = W.FICT_ORG_SUFFIXES if fict else W.ORG_SUFFIXES
        self.relations = SYMBOLIC_RELATIONS if realism == "symbolic" else RELATIONS

    # -- entities -----------------------------------------------------------
    def entity(self, kind: str, rng: random.Random, exclude=frozenset(), chunks: int = 2) -> str:
        """Sample an entity of ``kind`` not in ``exclude`` (tries hard, then raises)."""
        for _ in range(1000):
            if kind == "person":
                e = f"{rng.choice(self.first)} {rng.choice(self.last)}"
            elif kind == "org":
                e = f"{rng.choice(self.org_stems)} {rng.choice(self.org_suffixes)}"
            elif kind == "symbol":
                e = symbol(rng, chunks)
            else:
                e = rng.choice(self.lists[kind])
            if e not in exclude:
                return e
        raise ValueError(f"could not sample a fresh {kind!r}: all candidates are excluded "
                         "(a long context uses them all up); lower context_tokens or n_docs")

    def fresh_entity(self, kind: str, rng: random.Random, exclude=frozenset(), chunks: int = 2) -> tuple:
        """``(entity, kind)``: an entity of ``kind`` not in ``exclude`` or, once every one of that
        kind is used (long contexts use up the short lists, cities first), of another subject kind."""
        try:
            return self.entity(kind, rng, exclude, chunks), kind
        except ValueError:
            others = [k for k in self.subject_kinds() if k != kind]
            rng.shuffle(others)
            for other in others:
                try:
                    return self.entity(other, rng, exclude, chunks), other
                except ValueError:
                    continue
            raise

    def relation(self, name: str) -> Relation:
        for r in self.relations:
            if r.name == name:
                return r
        raise KeyError(f"no relation {name!r} in the {self.realism} world")

    def relations_from(self, kind: str) -> list:
        return [r for r in self.relations if r.subject == kind]

    def subject_kinds(self) -> list:
        return sorted({r.subject for r in self.relations})

    # -- sentences ----------------------------------------------------------
    def fact(self, rel: Relation, subject: str, obj: str) -> Fact:
        """Render ``rel`` for ``subject`` and ``obj``, locating the object span."""
        head, tail = rel.fact.split("{o}")
        kw = {"s": subject, "art": article(obj)}
        prefix = head.format(**kw)
        text = prefix + obj + tail.format(**kw)
        return Fact(text, len(prefix), len(prefix) + len(obj))

    def _fill(self, template: str, rng: random.Random, exclude, subject=None) -> str:
        kw = {"s": subject}
        for slot in ("city", "country", "hobby", "feature", "object", "season", "year"):
            if "{" + slot + "}" in template:
                kw[slot] = self.entity(slot, rng, exclude)
        if "{person}" in template:
            kw["person"] = self.entity("person", rng, exclude)
        if "{org}" in template:
            kw["org"] = self.entity("org", rng, exclude)
        if "{city2}" in template:
            kw["city2"] = self.entity("city", rng, exclude | {kw["city"]})
        return template.format(**kw)

    def symbolic_sentence(self, rng: random.Random) -> str:
        n = rng.randint(*SYMBOLIC_SENTENCE_LEN)
        return " ".join(rng.choice(W.SYMBOL_CHUNKS) for _ in range(n)) + "."

    def background(self, subject, kind, rng: random.Random, exclude=frozenset(),
                   skip_relations=frozenset(), stated=None) -> str:
        """One haystack sentence about ``subject`` (or a general one if ``subject`` is None).

        ``exclude`` holds entities that must not appear (the needle's entities);
        ``skip_relations`` the relations that must not be stated for ``subject``;
        ``stated`` (a set, updated) the relations already stated for it, so a
        document never gives two objects for one relation.
        """
        stated = set() if stated is None else stated
        rels = [x for x in self.relations_from(kind) if x.name not in skip_relations
                and x.name not in stated] if subject is not None else []
        r = rng.random()
        if self.realism == "symbolic":
            if rels and r < 0.3:
                return self._stated_fact(rels, subject, rng, exclude, stated)
            if r < 0.6:
                other = self.entity("symbol", rng, exclude)
                return self.fact(self.relations[0], other, self.entity("symbol", rng, exclude)).text
            return self.symbolic_sentence(rng)
        if subject is None or r < 0.15:
            return self._fill(rng.choice(GENERAL_TEMPLATES), rng, exclude)
        if rels and r < 0.55:
            return self._stated_fact(rels, subject, rng, exclude, stated)
        return self._fill(rng.choice(BACKGROUND_TEMPLATES[kind]), rng, exclude, subject)

    def _stated_fact(self, rels, subject, rng, exclude, stated) -> str:
        rel = rng.choice(rels)
        stated.add(rel.name)
        return self.fact(rel, subject, self.entity(rel.object, rng, exclude | {subject})).text


def symbol(rng: random.Random, chunks: int = 2) -> str:
    """A random string of ``chunks`` symbol chunks joined by "-", e.g. ``'ba1-ke4'``."""
    return "-".join(rng.choice(W.SYMBOL_CHUNKS) for _ in range(chunks))


_WORLDS: dict[str, World] = {}


def get_world(realism: str) -> World:
    """The shared :class:`World` for a realism level (worlds are stateless)."""
    if realism not in _WORLDS:
        _WORLDS[realism] = World(realism)
    return _WORLDS[realism]
