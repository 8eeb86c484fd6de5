"""Shared pytest fixtures and helpers for rhlens's tests."""

import warnings
from pathlib import Path

import pytest

warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The ../shared/realdata folder beside the checkout; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data samples not present at {REALDATA}")
    return REALDATA
