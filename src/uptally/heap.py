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
_M_ARENA_MAX = -8  # mallopt parameter, from glibc's malloc.h


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
    otherwise get an arena of its own, and each keeps its freed memory."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_ARENA_MAX, arenas)


def release_free_memory() -> None:
    """Give the pages glibc holds free (in every arena, not only at their tops) back to the
    system. Takes milliseconds; ctypes releases the GIL meanwhile, so it may run in a thread."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
