"""Atomic file writes: a reader never sees a half-written file, a crash leaves the old one.

Every file rhlens writes (examples, caches, results, checkpoints' JSON, run summaries) goes to a
temporary file in the same folder, is flushed to disk, and is renamed over the target. No torch
here, so the task layer can use it.

>>> import json, tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "out.json"
>>> write_json_atomic(path, {"a": 1})
>>> json.loads(path.read_text())
{'a': 1}
>>> with atomic_path(path) as tmp:
...     _ = tmp.write_text("half")
...     raise RuntimeError("crash")
Traceback (most recent call last):
RuntimeError: crash
>>> json.loads(path.read_text()), sorted(p.name for p in path.parent.iterdir())
({'a': 1}, ['out.json'])
>>> read_json_object(path)
{'a': 1}
>>> _ = path.write_text("[1, 2")
>>> read_json_object(path, remedy="write it again")  # doctest: +ELLIPSIS
Traceback (most recent call last):
ValueError: .../out.json is not valid JSON (...); write it again
"""

import contextlib
import errno
import hashlib
import json
import struct
import os
import secrets
import socket
import time
from pathlib import Path
from typing import Any, Iterator, NoReturn


@contextlib.contextmanager
def atomic_path(path: "str | os.PathLike") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    normally (after an fsync), deleted when it raises. Parent folders are created.

    The temporary file is created with mode ``0o666`` minus the process umask, like ``open(path,
    "w")`` would (``tempfile.mkstemp`` would force ``0o600`` whatever the umask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # pragma: no cover - a 32-bit random name already taken
            continue
        os.close(fd)
        break
    else:  # pragma: no cover
        raise FileExistsError(f"cannot create a temporary file beside {path}")
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        respect_umask(tmp)  # a writer that replaced the file (safetensors does) left it 0o600
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        reraise_naming(exc, path, "the file")


def reraise_naming(exc: BaseException, path: "str | os.PathLike", what: str, kept: str = "") -> NoReturn:
    """Raise :func:`write_error`'s error for ``exc`` (``exc`` itself when it is no unnamed I/O failure);
    call it in the ``except`` block that caught ``exc``, after removing what the write left."""
    named = write_error(exc, path, what, kept)
    if named is exc:
        raise exc
    raise named from exc


def write_error(exc: BaseException, path: "str | os.PathLike", what: str, kept: str = "") -> BaseException:
    """What to raise when writing ``what`` at ``path`` failed with ``exc`` (after removing what the
    write left behind): for an I/O failure that names no file (``write`` on a full disk raises
    ``OSError(28)`` without one; ``safetensors`` raises ``SafetensorError("... I/O error: ...")``),
    a :class:`WriteError` (an ``OSError``) naming ``path``, saying so when the disk is full; else ``exc``.

    >>> err = write_error(OSError(28, "No space left on device"), "/data/run/model", "the model folder")
    >>> print(err)  # doctest: +NORMALIZE_WHITESPACE
    could not write the model folder /data/run/model: the disk is full (No space left on device); nothing
    partial was left behind. Free space on the disk that holds /data/run, or write to another folder, and run again
    >>> err.errno, write_error(KeyError("x"), "/p", "it")
    (28, KeyError('x'))
    """
    text = str(exc)
    if isinstance(exc, WriteError):  # a write inside this one failed: say it once, of the outer path
        code, reason = exc.errno, exc.reason
    elif isinstance(exc, OSError):
        if exc.filename is not None:
            return exc  # the error names its file already
        code, reason = exc.errno, exc.strerror or text
    elif type(exc).__name__ == "SafetensorError" and "I/O error" in text:
        code, reason = (errno.ENOSPC if "os error 28" in text else None), text
    else:
        return exc
    path = Path(path)
    if code == errno.ENOSPC:
        message = (f"could not write {what} {path}: the disk is full ({reason}); nothing partial was left behind{kept}. "
                   f"Free space on the disk that holds {path.parent}, or write to another folder, and run again")
    else:
        message = f"could not write {what} {path}: {reason}; nothing partial was left behind{kept}"
    return WriteError(message, code, reason)


class WriteError(OSError):
    """Writing a file or folder failed (:func:`write_error`): the message names the path; ``errno``
    (``errno.ENOSPC`` for a full disk, else the cause's or ``None``) and ``reason`` are the cause's."""

    def __init__(self, message: str, code: int | None, reason: str):
        super().__init__(message)
        self.errno, self.reason = code, reason


def respect_umask(path: "str | os.PathLike") -> None:
    """Give the file ``path`` mode ``0o666`` minus the process umask, as ``open(path, "w")`` would
    (``safetensors`` writes its files ``0o600`` whatever the umask)."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    try:  # Linux: read it without changing it
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def write_text_atomic(path: "str | os.PathLike", text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def float32_short(x: float) -> float:
    """``x`` written with the fewest digits that give back the same float32, when ``x`` is a float32
    value (as every tensor's number is); any other float is returned as it is.

    >>> float32_short(0.8399999737739563), float32_short(0.1), float32_short(1733580000.123)
    (0.84, 0.1, 1733580000.123)
    """
    try:
        packed = struct.pack("<f", x)
    except OverflowError:
        return x
    if struct.unpack("<f", packed)[0] != x:  # not a float32 value (or NaN): keep every digit
        return x
    for digits in range(1, 10):
        short = float(f"{x:.{digits}g}")
        if struct.pack("<f", short) == packed:
            return short
    return x


def float32_json(data: Any) -> Any:
    """``data`` with every float32 value shortened by :func:`float32_short` (dicts, lists, tuples)."""
    if isinstance(data, float):
        return float32_short(data)
    if isinstance(data, dict):
        return {k: float32_json(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [float32_json(v) for v in data]
    return data


def write_json_atomic(path: "str | os.PathLike", data: Any, *, indent: int | None = 2) -> None:
    """Write ``data`` as JSON to ``path`` atomically; float32 values in their shortest form
    (``0.84``, not ``0.8399999737739563``: :func:`float32_json`)."""
    write_text_atomic(path, json.dumps(float32_json(data), indent=indent, ensure_ascii=False))


def read_json_object(
    path: "str | os.PathLike", *, error: type[Exception] = ValueError, remedy: str = "restore or remove it"
) -> dict[str, Any]:
    """Read the JSON object in ``path``; raise ``error`` naming the file, what is wrong and ``remedy``
    when it is not valid JSON or not an object (a missing file raises ``FileNotFoundError``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{path} is not valid JSON ({exc}); {remedy}") from None
    if not isinstance(data, dict):
        raise error(f"{path} must hold a JSON object, got {type(data).__name__}; {remedy}")
    return data


_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: "str | os.PathLike") -> str:
    """The SHA-256 (hex) of the file ``path``'s bytes, read in 1 MiB blocks (any size, little memory).

    Remembered for the process by path, size and modification time, so a model's weights are read
    once however often a run checks them.

    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.bin"
    >>> _ = path.write_bytes(b"abc")
    >>> file_digest(path)[:16]
    'ba7816bf8f01cfea'
    """
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _DIGESTS[key] = h.hexdigest()
    return _DIGESTS[key]


@contextlib.contextmanager
def replaced_folder(path: "str | os.PathLike", *, marker: str, kind: str, who: str, what: str) -> Iterator[Path]:
    """Yield a temporary sibling folder (``.<name>.tmp-<id>``) to fill; when the block ends without an
    error it replaces ``path``, so a crash never leaves a half-written folder under that name.

    An existing ``path`` is replaced only when it holds ``marker`` (it is ``kind``, a folder ``who``
    writes) or is empty; anything else raises ``FileExistsError`` naming it before anything is
    written. On an error the temporary folder is removed and the error names ``what`` at ``path``
    (:func:`reraise_naming`).

    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "m"
    >>> with replaced_folder(target, marker="m.json", kind="a test folder", who="the doctest", what="it") as tmp:
    ...     _ = (tmp / "m.json").write_text("{}")
    >>> sorted(p.name for p in target.iterdir())
    ['m.json']
    """
    import shutil
    import uuid

    target = Path(path)
    if target.exists():
        if not target.is_dir():
            raise FileExistsError(f"{target} exists and is not a folder; pick another path for {who}")
        if any(target.iterdir()) and not (target / marker).is_file():
            raise FileExistsError(f"{target} exists and is not {kind} (no {marker}); refusing to replace it. "
                                  "Pick a new path or remove the folder yourself.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp, old = target.parent / f".{target.name}.tmp-{tag}", target.parent / f".{target.name}.old-{tag}"
    try:
        tmp.mkdir()
        yield tmp
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        reraise_naming(exc, target, what)
    shutil.rmtree(old, ignore_errors=True)


class FolderInUseError(RuntimeError):
    """Another process holds the lock on a folder rhlens is about to write into."""


@contextlib.contextmanager
def hold_lock(path: "str | os.PathLike", what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing) for the block.

    The file then names its holder (process id, host, start time); a second holder gets
    :class:`FolderInUseError` naming ``what`` and that holder. The lock is the operating system's
    (``flock``): it goes away with its process, even after ``kill -9``. Without ``fcntl`` (Windows)
    the block runs unlocked.

    >>> import tempfile, pathlib
    >>> lock = pathlib.Path(tempfile.mkdtemp()) / ".lock"
    >>> with hold_lock(lock, "demo"):
    ...     with hold_lock(lock, "demo"):  # doctest: +ELLIPSIS
    ...         pass
    Traceback (most recent call last):
    rhlens.files.FolderInUseError: demo is in use by another process (pid ...); wait for it to end, or use another folder
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = Path(path).read_text(encoding="utf-8", errors="replace").strip() or "unknown"
            raise FolderInUseError(
                f"{what} is in use by another process ({holder}); wait for it to end, or use another folder"
            ) from None
        os.ftruncate(fd, 0)
        started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since {started}".encode())
        yield
    finally:
        os.close(fd)
