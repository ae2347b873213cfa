"""Freed memory really goes back to the operating system between phases (glibc, as on this platform)."""

from __future__ import annotations

import ctypes

from pipelines.memory import _MALLOC_TRIM, release_free_memory

_BLOCK = 64 * 1024  # under glibc's mmap threshold: served from the heap, which keeps it once freed
_BLOCKS = 1600  # 100 MB


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_free_heap_memory_is_returned_to_the_os() -> None:
    assert _MALLOC_TRIM is not None, "glibc's malloc_trim is expected on this platform"
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    blocks = [libc.malloc(_BLOCK) for _ in range(_BLOCKS)]
    for block in blocks:
        ctypes.memset(block, 1, _BLOCK)  # touch every page, so it is resident
    pin = libc.malloc(_BLOCK)  # keeps the heap's top in use, so free() alone cannot shrink it
    for block in blocks:
        libc.free(block)
    held = _rss_bytes()

    release_free_memory()

    released = held - _rss_bytes()
    libc.free(pin)
    assert released >= 0.9 * _BLOCK * _BLOCKS
