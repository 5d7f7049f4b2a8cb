"""The C allocator under Python (glibc): fewer arenas, and freed pages handed back to the system.

CPython keeps objects larger than 512 bytes, and C libraries (SQLite, the HTTP parser, TLS)
keep everything, in glibc's malloc. glibc gives each thread that allocates an arena of its own
(up to 8 per core) and hands freed memory back to the system only from the top of an arena. A
long-running server that allocates and frees batches of results therefore grows: measured at
10,000 monitors, about 25 MB of the resident set was free memory glibc held (bench/soak.py).
Elsewhere (musl, macOS) these calls do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

ARENAS = 2  # one for the event loop, one shared by the database and worker threads
# Blocks at least this big get pages of their own (mmap), handed back when freed. glibc starts
# at 128 KiB but raises the bar up to 32 MB each time such a block is freed, so the megabytes of
# every status page rendering (its text, its bytes, its gzip) end up inside the heap, between
# small long-lived blocks that keep those pages from being given back.
MMAP_AT_LEAST = 256 * 1024
_M_ARENA_MAX = -8  # mallopt parameters, from glibc's malloc.h
_M_MMAP_THRESHOLD = -3


@functools.cache
def _glibc() -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim, libc.mallopt  # noqa: B018 - both exist only in glibc
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(arenas: int = ARENAS) -> None:
    """Cap glibc's malloc arenas (call before threads start): each thread that allocates would
    otherwise get an arena of its own, and each keeps its freed memory. And fix the size from
    which blocks are mapped apart (`MMAP_AT_LEAST`)."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)
        libc.mallopt(_M_MMAP_THRESHOLD, MMAP_AT_LEAST)


def release_free_memory() -> None:
    """Give the pages glibc holds free (in every arena, not only at their tops) back to the
    system. Takes milliseconds; ctypes releases the GIL meanwhile, so it may run in a thread."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
