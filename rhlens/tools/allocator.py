"""Keep freed memory in the process (glibc's ``malloc``), so large tensors cost no page faults.

glibc serves an allocation above its mmap threshold (a dynamic value of at most 32 MiB) with fresh
pages from the kernel and gives them back on ``free``; every new tensor of that size then pays a
page fault per 4 KiB page. A ``TransformerBridge``'s eager attention makes such tensors in every
layer of every step (batch 16 x 12 heads x 256 x 256 float32 scores: 50 MB), so on TransformerLens
4.3.0 a training step of the embedded base spent 40% of its time in the kernel: 1.35 s per step,
12 s of system time in 12 steps; 0.84 s and 0.8 s with the thresholds raised, as fast as the
HookedTransformer path (``python bench/bench_allocator.py`` prints the ratio in one process).

:func:`keep_freed_memory` raises both thresholds (``mallopt``), so freed blocks up to
``threshold`` bytes stay in the process for the next tensor. The ``rhlens`` command calls it
first; call it yourself in a notebook. Elsewhere than glibc (macOS, musl) it does nothing.

>>> keep_freed_memory() in (True, False)
True
"""

import ctypes
import ctypes.util
import sys

# mallopt's parameter numbers (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
#: glibc's own ceiling for its dynamic mmap threshold (the reference of bench/bench_allocator.py)
GLIBC_DYNAMIC_MAX = 32 * 1024 * 1024
DEFAULT_THRESHOLD = 1 << 30


def set_malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` (bytes); ``False`` where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # the trim threshold only after the mmap one holds: setting either fixes both (no more dynamic
    # adjustment), and a fixed default mmap threshold (128 KiB) would be worse than the dynamic one
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))


def keep_freed_memory(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Serve allocations below ``threshold`` bytes from the process's heap and keep up to
    ``threshold`` freed bytes there; ``True`` when set (glibc), ``False`` where it does nothing."""
    return set_malloc_thresholds(threshold, threshold)
