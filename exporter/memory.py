"""glibc allocator controls: give back what a 100,000-kiosk scrape leaves in the heap.

A scrape allocates ~1M short-lived objects (~300 MB at its peak). Python frees them, but
glibc keeps freed memory in its arenas (one per thread that allocated) and returns it only
from the top of a heap, so a long-lived process grows scrape after scrape (docs/performance.md,
"Memory"). Both calls are no-ops where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

# mallopt() parameters, from glibc's malloc.h.
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


@functools.cache
def _glibc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018  (present only in glibc)
    except (OSError, AttributeError):
        return None
    return libc


def trim() -> bool:
    """Return the heap's free pages to the system (malloc_trim(0)); True if glibc did."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


def limit_arenas(arenas: int, mmap_threshold_bytes: int) -> bool:
    """Cap the number of arenas (16 request threads otherwise get up to 16), and serve every
    allocation above `mmap_threshold_bytes` (a /metrics page, a gzip buffer) from its own
    mapping, which goes back to the system when freed. Call once at start-up, before the
    threads; False where the allocator is not glibc."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas)) and bool(
        libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold_bytes)
    )
