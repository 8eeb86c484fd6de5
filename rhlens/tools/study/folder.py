"""The study's run folder: checked before any work, owned by one config, resumable unit by unit.

``study.json`` in the folder records the config and its digest. A folder that holds other files
but no ``study.json`` belongs to someone else and is refused; a study folder of another config is
refused unless ``overwrite`` (which removes the earlier study's files first). Each finished unit of
work (one model's fine-tune, one model's scores ...) ends by writing its ``*.json`` record
atomically; a record present means the unit is done, so a resumed run skips it.

>>> import tempfile, pathlib
>>> out = pathlib.Path(tempfile.mkdtemp()) / "run"
>>> folder = RunFolder.open(out, {"a": 1}, "abc")
>>> folder.done("mdqa/eval/real.json"), sorted(p.name for p in out.iterdir())
(False, ['study.json'])
>>> RunFolder.open(out, {"a": 2}, "def")  # doctest: +ELLIPSIS
Traceback (most recent call last):
FileExistsError: ... holds a study of another config (digest abc, this one def); differing keys: a. Use a new --out folder, or --overwrite to replace it
"""

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rhlens.files import read_json_object, write_json_atomic

MANIFEST = "study.json"
FORMAT = "rhlens-study/1"


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
        if not out.exists() or not any(out.iterdir()):
            return "new"
        manifest = out / MANIFEST
        if not manifest.is_file():
            raise FileExistsError(
                f"--out {out} is not empty and holds no {MANIFEST}: it is not an rhlens study folder; "
                "choose a new or empty folder"
            )
        old = read_json_object(manifest, remedy="the study folder's manifest is damaged: use a new --out folder")
        try:
            old_digest, old_config = old["digest"], old["config"]
        except KeyError as err:
            raise ValueError(f"{manifest} is damaged (no {err} field); use a new --out folder") from None
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
    def open(cls, out: "str | Path", config: dict[str, Any], digest: str, *, overwrite: bool = False) -> "RunFolder":
        """Check and claim ``out`` for a study of ``config`` (see :meth:`inspect`)."""
        out = Path(out)
        state = cls.inspect(out, config, digest, overwrite=overwrite)
        check_writable(out)
        if state == "overwrite":
            for child in out.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        if state != "resume":
            write_json_atomic(out / MANIFEST, {"format": FORMAT, "digest": digest, "config": config})
        return cls(out)

    # ---- units -------------------------------------------------------------------------------
    def file(self, rel: str) -> Path:
        return self.path / rel

    def done(self, rel: str) -> bool:
        """Whether the unit whose record is ``rel`` finished."""
        return (self.path / rel).is_file()

    def read(self, rel: str) -> Any:
        return json.loads((self.path / rel).read_text(encoding="utf-8"))

    def write(self, rel: str, data: Any) -> None:
        """Write a unit's record (atomically); from now on the unit counts as done."""
        write_json_atomic(self.path / rel, data)
