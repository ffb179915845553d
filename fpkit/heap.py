"""Giving the C allocator's free memory back to the operating system between songs.

glibc keeps memory that numpy and torch free in its per-thread arenas, where fragmentation
makes a long indexing run's resident memory creep up song after song (measured: 812 MB after
10 songs, 867 MB after 90). `malloc_trim` returns the free pages.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):  # not glibc (macOS, musl): nothing to do
        return None


def release_free_memory() -> None:
    """Return the allocator's free pages to the OS where the C library can (glibc); else do nothing."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
