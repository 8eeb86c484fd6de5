"""A failed command leaves no empty ``--out`` folder behind: note the folders a command is about to
create (:func:`new_folders`), and after a failure remove those that hold nothing, or only the claim
file the command wrote before its work started (:func:`remove_if_unused`). A folder that existed
before the command is never touched.

>>> import tempfile, pathlib
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> created = new_folders(root / "a" / "b")
>>> [p.name for p in created]
['b', 'a']
>>> (root / "a" / "b").mkdir(parents=True); (root / "a" / "b" / "run.json").write_text("{}") and None
>>> remove_if_unused(created); sorted(p.name for p in root.iterdir())
[]
"""

from pathlib import Path

#: what a command writes into a new --out folder before its work starts (removed again if it fails)
CLAIM_FILES = ("run.json", "study.json")


def new_folders(out: "Path | None") -> list[Path]:
    """``out`` and its parents that do not exist yet, deepest first (``[]`` for ``None``)."""
    if out is None:
        return []
    out = Path(out)
    return [p for p in [out, *out.parents] if not p.exists()]


def remove_if_unused(folders: list[Path]) -> None:
    """Remove each of ``folders`` (deepest first) that holds nothing, or only :data:`CLAIM_FILES`."""
    for folder in folders:
        if not folder.is_dir():
            continue
        entries = list(folder.iterdir())
        if all(e.is_file() and e.name in CLAIM_FILES for e in entries):
            for e in entries:
                e.unlink()
            folder.rmdir()
