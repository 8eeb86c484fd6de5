"""Reading real-data record files (``.json``, ``.jsonl``, optionally ``.gz``) and the
loaders' common runner, errors and result type.

Every problem becomes one of this module's errors naming the file (and the line
or record where known): a malformed record, a needle that is not there, bytes that
are not UTF-8, a truncated or non-gzip ``.gz``, a file that yields no examples.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "a.jsonl")
>>> _ = open(p, "wb").write(b'{"x": 1}\\n\\n{"x": 2}\\n')
>>> [(str(w), r) for w, r in iter_records(p)]  # doctest: +ELLIPSIS
[('.../a.jsonl, line 1', {'x': 1}), ('.../a.jsonl, line 3', {'x': 2})]
"""

import gzip
import json
import os
import warnings
import zlib


class LoadResult(list):
    """A list of examples that also reports what was skipped (never silently)."""

    def __init__(self, examples=(), skip_reasons=()):
        super().__init__(examples)
        self.skip_reasons = list(skip_reasons)

    @property
    def skipped(self) -> int:
        return len(self.skip_reasons)

    def __repr__(self):
        return f"LoadResult({len(self)} examples, {self.skipped} skipped)"


class MalformedRecordError(ValueError):
    """A record lacks a field or has the wrong type."""


class UnreadableFileError(ValueError):
    """A file's bytes cannot be read as (gzipped) UTF-8 text: truncated or non-gzip
    ``.gz``, or bytes that are not UTF-8."""


class NoExamplesError(ValueError):
    """A loader read a file and produced no example."""


class NeedleNotFoundError(ValueError):
    """The answer (needle) cannot be found in its context."""


class InWordAnswerError(NeedleNotFoundError):
    """The answer occurs only inside a longer word ("190" in "1901"): no answer span."""


class Where:
    """A file position for error messages: ``"<path>, line 3"``."""

    def __init__(self, path, n, unit):
        self.path, self.n, self.unit = os.fspath(path), n, unit

    def __str__(self):
        return f"{self.path}, {self.unit} {self.n}"

    def malformed(self, field, msg):
        return MalformedRecordError(f"{self}: field {field!r} {msg}; fix or remove the record")

    def missing(self, field, msg):
        return NeedleNotFoundError(f"{self}: field {field!r}: {msg}")

    def in_word(self, field, msg):
        return InWordAnswerError(f"{self}: field {field!r}: {msg}")


_READ_ERRORS = (EOFError, OSError, zlib.error)


def _unreadable(path, lineno, err):
    kind = ("the .gz file is truncated or corrupt" if isinstance(err, (EOFError, zlib.error))
            else "cannot read it" if not isinstance(err, gzip.BadGzipFile)
            else "it is not a gzip file (rename it without .gz if it is plain text)")
    return UnreadableFileError(f"{path}, line {lineno}: {kind} ({type(err).__name__}: {err})")


def _decode(path, raw: bytes, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = lineno + raw[: err.start].count(b"\n")
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1)
        raise UnreadableFileError(
            f"{path}, line {line}: bytes are not UTF-8 text ({err.reason} at byte {column} "
            f"of the line); re-encode the file as UTF-8") from None


#: the longest line (bytes, after gunzip) a record file may hold: far beyond any model's context,
#: far below what would exhaust memory (a 1 MB .gz can hold a 1 GiB line)
MAX_LINE_BYTES = 64 << 20
#: the most bytes (after gunzip) read from one record file
MAX_FILE_BYTES = 4 << 30


def iter_lines(path):
    """Yield ``(lineno, text)`` for each line of a (gzipped) UTF-8 text file; read and
    decoding errors become :class:`UnreadableFileError` naming the file and line, and so does a
    line over :data:`MAX_LINE_BYTES` or a file over :data:`MAX_FILE_BYTES` (read before any of it
    is kept or tokenized)."""
    p = os.fspath(path)
    opener = gzip.open if p.endswith(".gz") else open
    with opener(p, "rb") as f:
        lineno, total = 0, 0
        while True:
            try:
                raw = f.readline(MAX_LINE_BYTES + 1)
            except _READ_ERRORS as err:
                raise _unreadable(p, lineno + 1, err) from None
            if not raw:
                return
            lineno += 1
            total += len(raw)
            if len(raw) > MAX_LINE_BYTES:
                raise UnreadableFileError(
                    f"{p}, line {lineno}: longer than {MAX_LINE_BYTES} bytes (rhlens.tasks.records.MAX_LINE_BYTES); "
                    "no example is that long: check the file")
            if total > MAX_FILE_BYTES:
                raise UnreadableFileError(
                    f"{p}: more than {MAX_FILE_BYTES} bytes of text (rhlens.tasks.records.MAX_FILE_BYTES) by line "
                    f"{lineno}; split the file, or raise that limit")
            text = _decode(p, raw, lineno)
            yield lineno, (text.lstrip("\ufeff") if lineno == 1 else text)


def iter_records(path):
    """Yield ``(where, record)`` for each record of a .json / .jsonl / .jsonl.gz file."""
    p = os.fspath(path)
    base = p[:-3] if p.endswith(".gz") else p
    if base.endswith(".json"):
        text = "".join(line for _, line in iter_lines(p))
        if not text.strip():
            return
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise MalformedRecordError(f"{p}, line {err.lineno}: invalid JSON: {err.msg}") from None
        records = data if isinstance(data, list) else [data]
        for i, rec in enumerate(records, 1):
            yield Where(p, i, "record"), rec
        return
    for lineno, line in iter_lines(p):
        if not line.strip():
            continue
        w = Where(p, lineno, "line")
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            raise MalformedRecordError(f"{w}: invalid JSON ({err.msg})") from None
        yield w, rec


def get_field(rec, key, kind, where, prefix=""):
    """``rec[key]`` checked to be ``kind`` (str: non-empty; list; int, not bool)."""
    name = prefix + key
    if not isinstance(rec, dict):
        raise where.malformed(prefix.rstrip(".") or "<record>", "must be a JSON object")
    if key not in rec:
        raise where.malformed(name, "is missing")
    value = rec[key]
    if kind is str and not (isinstance(value, str) and value.strip()):
        raise where.malformed(name, f"must be a non-empty string, got {value!r:.60}")
    if kind is list and not isinstance(value, list):
        raise where.malformed(name, f"must be a list, got {type(value).__name__}")
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise where.malformed(name, f"must be an int, got {value!r:.60}")
    return value


def check_errors(errors):
    if errors not in ("raise", "skip"):
        raise ValueError(f'errors={errors!r} must be "raise" or "skip"')


def run(path, errors, build, *, strict=False) -> LoadResult:
    """Apply ``build(where, record) -> list[Example]`` to every record of ``path``.

    A :class:`NeedleNotFoundError` is raised (``errors="raise"``) or counted in
    ``skip_reasons`` (``"skip"``); an error may carry ``.partial``, the record's
    good examples, which are kept when skipping. An :class:`InWordAnswerError` is
    always skipped and counted, with one warning per load, unless ``strict=True``
    (then raised). A file that yields no example raises :class:`NoExamplesError`.
    """
    check_errors(errors)
    p = os.fspath(path)
    out, in_word, n_records = LoadResult(), [], 0
    for where, rec in iter_records(p):
        n_records += 1
        try:
            out.extend(build(where, rec))
        except NeedleNotFoundError as err:
            problems = getattr(err, "problems", None) or [(err, str(err))]
            out.extend(getattr(err, "partial", []))
            for problem, msg in problems:
                if isinstance(problem, InWordAnswerError) and not strict:
                    in_word.append(msg)
                elif errors == "raise":
                    raise problem from None
            out.skip_reasons.extend(msg for _, msg in problems)
    if in_word:
        warnings.warn(f"{p}: {len(in_word)} example(s) skipped because their answer occurs only "
                      f"inside a longer word (e.g. '190' in '1901'), which a head cannot copy "
                      f"as the answer; first: {in_word[0]}. They are listed in .skip_reasons; "
                      f"strict=True makes this an error.", stacklevel=3)
    if not out:
        detail = (f"{out.skipped} skipped, first: {out.skip_reasons[0]}" if out.skipped
                  else "the file is empty" if n_records == 0 else "no record held an example")
        raise NoExamplesError(f"{p}: no examples loaded from {n_records} record(s) ({detail}); "
                              f"check the file and the loader match")
    return out
