"""The :class:`Example` record every task produces, with JSONL and ``datasets`` round trips."""

import json
import operator
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

from rhlens.files import atomic_path
from rhlens.tasks.records import iter_lines
from rhlens.tasks.spans import locate_in_needles


@dataclass(frozen=True)
class Example:
    """One long-context example.

    Attributes:
        prompt: the full context and question, ending where the answer starts
            (e.g. ``"...\\nQuestion: ...\\nAnswer:"``).
        answer: gold answer text without a leading space.
        needles: [start, end) character spans in ``prompt`` of the evidence:
            whole sentences or records that state the answer (niah's needle
            sentence, the gold document's fact sentence, each hop's supporting
            sentence in hop order, the whole key-value pair, each citing
            document's insight sentence(s)); knockout, patching and blocking
            positions use them. For QA tasks every answer span lies inside one.
        task: ``"mdqa" | "musique" | "summhay" | "kv" | "niah"`` (or a loader name).
        variant: one of ``rhlens.tasks.VARIANTS`` or ``"real"``.
        aliases: other accepted answers.
        meta: every knob and the seed (JSON-serialisable).
        answer_spans: [start, end) character spans in ``prompt`` of the text a
            retrieval head copies (what retrieval scores count hits on) when producing the answer (Wu et al.'s
            ``real_needle``): exactly one copy source per piece of the answer,
            in answer order (QA: the answer inside the evidence needle; kv: the
            value; summhay: each cited document's ``[i]`` identifier). Every
            generator and loader sets it; when not given (hand-built examples,
            older files) it is located as the first whole-word occurrence of
            ``answer`` (then of each alias) inside a needle span, and stays
            ``()`` when there is none.

    >>> ex = Example(prompt="Ann lives in Rome.\\nQuestion: Where does Ann live?\\nAnswer:",
    ...              answer="Rome", needles=((0, 18),), task="mdqa", variant="realistic")
    >>> ex.completion, ex.needle_texts, ex.answer_spans, ex.answer_texts
    (' Rome', ('Ann lives in Rome.',), ((13, 17),), ('Rome',))
    >>> Example.from_dict(ex.to_dict()) == ex
    True
    """

    prompt: str
    answer: str
    # needles, aliases and answer_spans: given as tuples or lists (JSON, datasets); stored as tuples.
    needles: tuple | list
    task: str
    variant: str
    aliases: Sequence[str] = ()  # a str is refused in __post_init__ (it would be one alias per character)
    meta: dict = field(default_factory=dict, compare=True, hash=False)
    answer_spans: tuple | list = ()

    def __post_init__(self):
        # normalise lists (from JSON) to tuples so equality and hashing behave
        object.__setattr__(self, "needles", _spans("needles", self.needles))
        if isinstance(self.aliases, (str, bytes)) or not all(isinstance(a, str) for a in self.aliases):
            # a string would become one alias per character, and (QA scores by containment) almost
            # any prediction would contain one of them
            hint = f"; write [{self.aliases!r}] for one alias" if isinstance(self.aliases, str) else ""
            raise TypeError(f"Example.aliases must be a list of strings, got {self.aliases!r}{hint}")
        object.__setattr__(self, "aliases", tuple(self.aliases))
        spans = _spans("answer_spans", self.answer_spans or ())
        if not spans and isinstance(self.prompt, str):
            spans = locate_in_needles(self.prompt, (self.answer, *self.aliases), self.needles)
        object.__setattr__(self, "answer_spans", spans)

    @property
    def completion(self) -> str:
        """The exact text that follows ``prompt`` in training: ``" " + answer``."""
        return " " + self.answer

    @property
    def needle_texts(self) -> tuple:
        return tuple(self.prompt[s:e] for s, e in self.needles)

    @property
    def answer_texts(self) -> tuple:
        """The prompt's text at each of :attr:`answer_spans`."""
        return tuple(self.prompt[s:e] for s, e in self.answer_spans)

    def validate(self) -> "Example":
        """Raise ``ValueError`` naming the field if the example is inconsistent; return self."""
        if not isinstance(self.prompt, str) or not self.prompt:
            raise ValueError("Example.prompt must be a non-empty string")
        if not isinstance(self.answer, str) or not self.answer:
            raise ValueError("Example.answer must be a non-empty string")
        if self.answer != self.answer.lstrip():
            raise ValueError(f"Example.answer must not start with whitespace: {self.answer!r}")
        if not self.task:
            raise ValueError("Example.task must be a non-empty string")
        if not self.needles:
            raise ValueError("Example.needles is empty: every example needs a needle span")
        for i, (s, e) in enumerate(self.needles):
            if not 0 <= s < e <= len(self.prompt):
                raise ValueError(
                    f"Example.needles[{i}]=({s}, {e}) is empty or outside the prompt "
                    f"(length {len(self.prompt)})")
        golds = [_loose(g) for g in (self.answer, *self.aliases)]
        words = {w for g in golds for w in g.split()}
        if "" in golds:
            raise ValueError("Example.aliases holds an empty string: it would count every prediction correct")
        for i, (s, e) in enumerate(self.answer_spans):
            if not 0 <= s < e <= len(self.prompt):
                raise ValueError(
                    f"Example.answer_spans[{i}]=({s}, {e}) is empty or outside the prompt "
                    f"(length {len(self.prompt)})")
            if not set(_loose(self.prompt[s:e]).split()) & words:
                # a span may cover more than the answer (Wu et al. score copies of a whole needle), but
                # one sharing no word with any gold answer is most likely misplaced
                warnings.warn(
                    f"Example.answer_spans[{i}]=({s}, {e}) covers {self.prompt[s:e]!r}, which shares no word with the "
                    f"answer {self.answer!r} or an alias: retrieval scores count copies of that text", stacklevel=2)
        try:
            json.dumps(self.meta)
        except TypeError as err:
            raise ValueError(f"Example.meta is not JSON-serialisable: {err}") from None
        return self

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "answer": self.answer,
                "needles": [list(n) for n in self.needles], "task": self.task,
                "variant": self.variant, "aliases": list(self.aliases), "meta": self.meta,
                "answer_spans": [list(a) for a in self.answer_spans]}

    @classmethod
    def from_dict(cls, d: dict) -> "Example":
        missing = [k for k in ("prompt", "answer", "needles", "task", "variant") if k not in d]
        if missing:
            raise ValueError(f"Example dict is missing field(s) {missing}")
        return cls(prompt=d["prompt"], answer=d["answer"], needles=d["needles"],
                   task=d["task"], variant=d["variant"], aliases=d.get("aliases", ()),
                   meta=dict(d.get("meta") or {}), answer_spans=d.get("answer_spans") or ())


def _loose(text: str) -> str:
    """``text`` lower-cased with runs of white space as one space (how loaders match answers)."""
    return " ".join(text.lower().split())


def _spans(name: str, spans) -> tuple:
    """``spans`` as a tuple of ``(start, end)`` int pairs; a float, bool or string offset is a
    ``TypeError`` naming the field (it would be truncated silently)."""
    out = []
    for i, pair in enumerate(spans):
        try:
            start, end = pair
            if isinstance(start, bool) or isinstance(end, bool):
                raise TypeError("a bool")
            out.append((operator.index(start), operator.index(end)))
        except (TypeError, ValueError):
            raise TypeError(f"Example.{name}[{i}] must be a pair of integer character offsets, got {pair!r}") from None
    return tuple(out)


def save_jsonl(examples, path) -> None:
    """Write examples as JSON lines atomically (:func:`rhlens.files.atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps(ex.to_dict(), ensure_ascii=False) + "\n")


def load_jsonl(path) -> list:
    """Read examples written by :func:`save_jsonl` (optionally gzipped); errors name
    the file and line, unreadable bytes included. A file without examples is an error."""
    out = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            out.append(Example.from_dict(json.loads(line)).validate())
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}, line {lineno}: {err}") from None
    if not out:
        raise ValueError(f"{path} holds no examples (it is empty); write examples with save_jsonl")
    return out


def to_hf_dataset(examples):
    """A ``datasets.Dataset`` with one row per example (``meta`` stored as JSON text)."""
    import datasets

    rows = [{"prompt": e.prompt, "answer": e.answer, "needles": [list(n) for n in e.needles],
             "task": e.task, "variant": e.variant, "aliases": list(e.aliases),
             "meta": json.dumps(e.meta),
             "answer_spans": [list(a) for a in e.answer_spans]} for e in examples]
    features = datasets.Features({
        "prompt": datasets.Value("string"), "answer": datasets.Value("string"),
        "needles": datasets.Sequence(datasets.Sequence(datasets.Value("int64"))),
        "task": datasets.Value("string"), "variant": datasets.Value("string"),
        "aliases": datasets.Sequence(datasets.Value("string")),
        "meta": datasets.Value("string"),
        "answer_spans": datasets.Sequence(datasets.Sequence(datasets.Value("int64")))})
    return datasets.Dataset.from_list(rows, features=features)


def from_hf_dataset(ds) -> list:
    """Inverse of :func:`to_hf_dataset`."""
    out = []
    for row in ds:
        d = dict(row)
        d["meta"] = json.loads(d["meta"]) if isinstance(d.get("meta"), str) else d.get("meta")
        out.append(Example.from_dict(d))
    return out
