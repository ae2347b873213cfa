"""The C allocator setting that keeps a big Meta sync's memory level from one load to the next.

glibc serves an allocation above its mmap threshold (128 KiB) with a mapping of its own, handed back to the system
when freed; but each time it frees such a mapping it raises the threshold to that block's size (up to 32 MiB), and
blocks of that size then come from the heap, where freed ones stay as fragments the process keeps. DuckDB's buffers
are 256 KiB blocks: once the first load had freed its blocks, every later load's blocks went to the heap, and a sync
of ten thousand ads grew piece after piece. Setting the threshold explicitly (mallopt(3)) turns the adjustment off,
so each load's blocks go back to the system when the load ends; Python's own objects and pyarrow's buffers come
from allocators of their own and are not affected.
"""

from __future__ import annotations

import ctypes
import platform

M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's own default, held fixed


def fix_mmap_threshold() -> bool:
    """Hold glibc's mmap threshold at its default for the rest of the process; whether it was set (other C
    libraries do not move their threshold, and are left alone)."""
    if platform.libc_ver()[0] != "glibc":
        return False
    return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
