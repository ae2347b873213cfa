"""Handing memory that a finished phase freed back to the operating system.

Allocators keep what they free for reuse: glibc inside its heap arenas (Python's and dlt's objects, file
bytes), Arrow's pool (mimalloc) for arrow arrays. After a slice's keyring work and arrow batches a process
held 40-100 MB of such free memory through the next slice's parsing, its peak. Both are asked to return it
between phases, which costs a few milliseconds; `malloc_trim` exists only in glibc (not musl or macOS).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import pyarrow as pa

_LIBC = ctypes.CDLL(ctypes.util.find_library("c")) if sys.platform.startswith("linux") else None
_MALLOC_TRIM = getattr(_LIBC, "malloc_trim", None)


def release_free_memory() -> None:
    """Return the free pages of Arrow's pool and of the C heap to the operating system."""
    pa.default_memory_pool().release_unused()
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
