"""Shared pytest fixtures and helpers for rhlens's tests."""

import warnings
from pathlib import Path

import pytest
import torch

warnings.filterwarnings("ignore", message="HookedTransformer is deprecated", category=DeprecationWarning)

# Tiny models run fastest on one thread; it also keeps parallel test processes from contending.
torch.set_num_threads(1)

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"


@pytest.fixture(scope="session")
def realdata() -> Path:
    """The ../shared/realdata folder beside the checkout; skips the test when it is absent."""
    if not REALDATA.is_dir():
        pytest.skip(f"real data samples not present at {REALDATA}")
    return REALDATA
