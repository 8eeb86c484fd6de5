"""The study's run folder: checked before any work, owned by one config, resumable unit by unit.

``study.json`` in the folder records the config, its digest and the study's format. A folder that
holds other files but no study manifest of this format belongs to someone else and is refused; a
study folder of another config is refused unless ``overwrite`` (which first removes what the
earlier study wrote, :meth:`Layout.written`, and keeps every other file). Each finished unit of
work (one model's fine-tune, one model's scores ...) ends by writing its ``*.json`` record
atomically; a readable record means the unit is done, so a resumed run skips it (a damaged one is
named in a warning and its unit is redone). :meth:`RunFolder.lock` keeps a second study out of a
folder in use.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> folder = RunFolder.open(out, {"a": 1}, "abc")
>>> folder.done("mdqa/eval/real.json"), sorted(p.name for p in out.iterdir())
(False, ['study.json'])
>>> RunFolder.open(out, {"a": 2}, "def")  # doctest: +ELLIPSIS
Traceback (most recent call last):
FileExistsError: ... holds a study of another config (digest abc, this one def); differing keys: a. Use a new --out folder, or --overwrite to replace it
"""

import contextlib
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rhlens.files import hold_lock, read_json_object, write_json_atomic
from rhlens.tools.study.layout import Layout

MANIFEST = Layout.MANIFEST
FORMAT = "rhlens-study/1"
#: entries that do not make a folder non-empty: the lock and the write probe, left by an interrupted start
_TRANSIENT = (Layout.LOCK, ".write-check.")


def refuse_file_path(out: Path) -> None:
    """Raise when ``out`` is a file or lies under one."""
    for parent in [out, *out.parents]:
        if parent.exists():
            if not parent.is_dir():
                what = "is a file" if parent == out else f"lies under {parent}, which is a file"
                raise NotADirectoryError(f"--out {out} {what}; choose a folder path")
            return


def check_can_create(out: Path) -> None:
    """Raise when ``out`` is a file, lies under one, or its nearest existing folder is not writable."""
    out = Path(out)
    refuse_file_path(out)
    existing = next(p for p in [out, *out.parents] if p.exists())
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {out}: {existing} is not writable; choose a folder you can write to")


def check_writable(out: Path) -> None:
    """Create ``out`` and prove it takes a file, or raise a clear error (before any work)."""
    out = Path(out)
    check_can_create(out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(dir=out, prefix=".write-check.")
        os.close(fd)
        os.unlink(name)
    except OSError as err:
        raise PermissionError(f"--out {out} is not writable ({err.strerror}); choose a folder you can write to") from None


def _differing(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b)):
            out += _differing(a.get(k), b.get(k), f"{prefix}{k}" if not prefix else f"{prefix}.{k}")
        return out
    return [] if a == b else [prefix or "(root)"]


class RunFolder:
    """A study's output folder (see the module docstring). ``path`` is the root."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def inspect(cls, out: "str | Path", config: dict[str, Any], digest: str, *, overwrite: bool = False) -> str:
        """Check ``out`` for a study of ``config`` without writing: ``"new"``, ``"resume"`` or
        ``"overwrite"``; raises for a file, a foreign folder, or another config without ``overwrite``."""
        out = Path(out)
        check_can_create(out)
        if not out.exists() or not any(not p.name.startswith(_TRANSIENT) for p in out.iterdir()):
            return "new"
        old = _manifest(out)
        old_digest, old_config = old["digest"], old["config"]
        if old_digest == digest:
            return "resume"
        if overwrite:
            return "overwrite"
        keys = ", ".join(_differing(old_config, config)[:8]) or "(none shown)"
        raise FileExistsError(
            f"--out {out} holds a study of another config (digest {old_digest}, this one {digest}); "
            f"differing keys: {keys}. Use a new --out folder, or --overwrite to replace it"
        )

    @classmethod
    def open(cls, out: "str | Path", config: dict[str, Any], digest: str, *, overwrite: bool = False,
             tasks: "list[str] | None" = None) -> "RunFolder":
        """Check and claim ``out`` for a study of ``config`` over ``tasks`` (see :meth:`inspect`)."""
        out = Path(out)
        state = cls.inspect(out, config, digest, overwrite=overwrite)
        check_writable(out)
        if state == "overwrite":
            _remove_study(out, _manifest(out))
        if state != "resume":
            write_json_atomic(out / MANIFEST, {"format": FORMAT, "digest": digest, "config": config,
                                               "tasks": list(tasks or [])})
        return cls(out)

    @staticmethod
    @contextlib.contextmanager
    def lock(out: "str | Path") -> Iterator[None]:
        """Hold ``out``'s study lock (created with ``out``) for the block; a second study of the same
        folder gets :class:`rhlens.files.FolderInUseError` naming the holder's process and host."""
        out = Path(out)
        check_writable(out)
        with hold_lock(out / Layout.LOCK, f"--out {out}"):
            yield

    # ---- units -------------------------------------------------------------------------------
    def file(self, rel: str) -> Path:
        return self.path / rel

    def done(self, rel: str) -> bool:
        """Whether the unit whose record is ``rel`` finished: its record is a readable JSON object.
        A damaged record (empty, truncated) is named in a warning and its unit counts as not done."""
        path = self.path / rel
        if not path.is_file():
            return False
        try:
            read_json_object(path)
        except ValueError as err:
            warnings.warn(f"{err}; redoing that unit", stacklevel=2)
            return False
        return True

    def read(self, rel: str) -> Any:
        """The record ``rel``; a damaged one raises ``ValueError`` naming the file."""
        return read_json_object(self.path / rel, remedy="delete it and run the study again to redo that unit")

    def write(self, rel: str, data: Any) -> None:
        """Write a unit's record (atomically); from now on the unit counts as done."""
        write_json_atomic(self.path / rel, data)


def _manifest(out: Path) -> dict[str, Any]:
    """The study manifest of ``out``; raises when there is none of this format (a foreign folder)."""
    manifest = out / MANIFEST
    if not manifest.is_file():
        raise FileExistsError(
            f"--out {out} is not empty and holds no {MANIFEST}: it is not an rhlens study folder; "
            "choose a new or empty folder"
        )
    old = read_json_object(manifest, remedy="the study folder's manifest is damaged: use a new --out folder")
    if old.get("format") != FORMAT:
        raise FileExistsError(
            f"{manifest} is not an rhlens study manifest (format {old.get('format')!r}, expected {FORMAT!r}): "
            f"--out {out} is not an rhlens study folder; choose a new or empty folder"
        )
    for key in ("digest", "config"):
        if key not in old:
            raise ValueError(f"{manifest} is damaged (no {key!r} field); use a new --out folder")
    return old


def _remove_study(out: Path, manifest: dict[str, Any]) -> None:
    """Remove what the study recorded in ``manifest`` wrote in ``out`` (:meth:`Layout.written`);
    other files stay, and a task folder is removed only when nothing else is left in it."""
    config = manifest["config"]
    nested = config.get("config") if isinstance(config, dict) else None  # a Study's identity holds its config
    tasks = manifest.get("tasks") or (nested.get("tasks") if isinstance(nested, dict) else None) or []
    tasks = [t for t in tasks if isinstance(t, str) and t and "/" not in t and t not in (".", "..")]
    seeds = nested.get("seeds") if isinstance(nested, dict) else None
    seeds = [s for s in seeds if isinstance(s, int) and not isinstance(s, bool)] if isinstance(seeds, list) else []
    for rel in Layout.written(tasks, seeds):
        if rel == Layout.LOCK:
            continue  # held by this process now
        path = out / rel
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    tops = tuple(f".{rel}." for rel in Layout.written([]))
    for leftover in out.glob(".*.tmp"):  # an interrupted atomic write of a top-level file
        if leftover.name.startswith(tops):
            leftover.unlink()
    for task in tasks:
        with contextlib.suppress(OSError):  # not empty: the user's files stay
            (out / task).rmdir()
