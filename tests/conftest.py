"""Shared pytest fixtures and helpers for rhlens's tests.

Annotations are checked at run time: every function and dataclass of the packages in
``TYPECHECKED`` is wrapped by jaxtyping's import hook with beartype as the checker, so a tensor whose
shape or dtype contradicts its ``Float[Tensor, "batch pos"]`` annotation (or an argument of the
wrong type) fails the test that passed it. ``RHLENS_TYPECHECK=0`` switches the checks off.
"""

import os
import sys
import warnings
from pathlib import Path

from jaxtyping import install_import_hook

# Packages whose annotations are not checked yet, each with the reason (a test passing a value the
# code accepts, or refuses with its own message, that the annotation does not allow). None today:
# keep it empty by making the annotation say what is accepted instead of adding a package here.
NOT_TYPECHECKED: dict[str, str] = {}
ROOT = Path(__file__).resolve().parents[1] / "rhlens"
TYPECHECKED = sorted(
    f"rhlens.{p.stem}"
    for p in ROOT.iterdir()
    if (p.suffix == ".py" and p.stem != "__init__" or (p / "__init__.py").is_file()) and f"rhlens.{p.stem}" not in NOT_TYPECHECKED
)
TYPECHECKER = "beartype.beartype(conf=beartype.BeartypeConf(is_pep484_tower=True))"
if os.environ.get("RHLENS_TYPECHECK", "1") != "0":
    _early = sorted(m for m in (*TYPECHECKED, "rhlens") if m in sys.modules)
    if _early:
        raise RuntimeError(f"{_early} imported before tests/conftest.py: their annotations would not be checked")
    from beartype.roar import BeartypeDecorHintPep585DeprecationWarning

    # typing.Callable / Iterator / Sequence are fine hints; beartype only nags about their future.
    warnings.filterwarnings("ignore", category=BeartypeDecorHintPep585DeprecationWarning)
    install_import_hook(list(TYPECHECKED), TYPECHECKER)

import pytest  # noqa: E402
import torch  # noqa: E402

from rhlens.tools.allocator import keep_freed_memory  # noqa: E402

keep_freed_memory()  # as the rhlens command does: large tensors reuse freed memory (a Bridge's steps 1.6x faster)

warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)

# Tiny models run fastest on one thread; it also keeps parallel test processes from contending.
torch.set_num_threads(1)

REALDATA = ROOT.parent.parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The ../shared/realdata folder beside the checkout; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data samples not present at {REALDATA}")
    return REALDATA


TESTS = Path(__file__).resolve().parent


def _tier(path: Path) -> str:
    """The test tier of a collected file: ``unit`` (tests/unit and the package's doctests),
    ``integration``, ``tutorials`` (the tutorials run as scripts) or ``docs`` (the site build and
    the tables the docs keep)."""
    try:
        rel = path.resolve().relative_to(TESTS)
    except ValueError:
        return "unit"  # a doctest in rhlens/
    top = rel.parts[0]
    return top if top in ("unit", "integration", "tutorials") else "docs"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test with its tier, so ``pytest -m unit`` (or ``integration``, ``tutorials``,
    ``docs``) runs one tier (``-m "not slow"`` leaves out the tests over ~10 s); on TransformerLens
    4, skip (with the reason) what rhlens cannot do on a TransformerBridge yet."""
    from tests.tl4_gaps import skip_tl4_gaps

    for item in items:
        item.add_marker(_tier(Path(str(item.path))))
    skip_tl4_gaps(items)
