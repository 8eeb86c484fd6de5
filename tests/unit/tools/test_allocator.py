"""rhlens.tools.allocator: freed large blocks stay in the process (no page faults on reuse)."""

import subprocess
import sys

import pytest

from rhlens.tools.allocator import GLIBC_DYNAMIC_MAX, keep_freed_memory

# Allocates, touches and frees a 64 MB buffer 20 times; prints the minor page faults that cost.
_FAULTS = """
import ctypes, resource, sys
from rhlens.tools.allocator import GLIBC_DYNAMIC_MAX, keep_freed_memory, set_malloc_thresholds
if sys.argv[1] == "keep":
    assert keep_freed_memory()
else:  # glibc's default at its ceiling: blocks over 32 MiB come from and go back to the kernel
    assert set_malloc_thresholds(GLIBC_DYNAMIC_MAX, 2 * GLIBC_DYNAMIC_MAX)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    buf = bytearray(64 * 1024 * 1024)  # zero-filled: touches every page
    del buf
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


@pytest.mark.skipif(not keep_freed_memory(), reason="no glibc malloc here (macOS, musl): keep_freed_memory does nothing")
def test_freed_large_blocks_are_reused_without_page_faults():
    pages = 64 * 1024 * 1024 // 4096
    default, kept = _faults("default"), _faults("keep")
    assert default >= 15 * pages  # every round faults its pages in again
    assert kept <= 2 * pages  # the first round only


def test_thresholds_off_linux_do_nothing(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert keep_freed_memory() is False
    assert GLIBC_DYNAMIC_MAX == 32 * 1024 * 1024
