"""glibc's allocator, told to keep the memory of large freed tensors (training speed).

A training step allocates and frees the same large tensors again and again (on `default`,
PPO's minibatch of 1,024 environments makes activations of 1.5 MB each). glibc serves
blocks above its mmap threshold with fresh ``mmap`` calls and gives freed memory at the top
of the heap back to the system above its trim threshold, so every step pays page faults on
memory it just freed. :func:`keep_freed_memory` raises both thresholds (and the padding
each heap extension asks for) through ``mallopt``, once per process, which
``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_TOP_PAD_`` would do from
the environment. The process keeps up to the thresholds of freed memory for reuse instead
of returning it. Elsewhere than Linux with glibc it does nothing.

>>> keep_freed_memory() in (True, False)
True
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

__all__ = ["MMAP_THRESHOLD", "TOP_PAD", "TRIM_THRESHOLD", "keep_freed_memory"]

#: blocks below this come from the heap, whose freed memory is reused (glibc's maximum on
#: 64-bit systems, 32 MiB; its default starts at 128 KiB and moves up as blocks are freed)
MMAP_THRESHOLD = 32 * 1024 * 1024
#: freed memory at the heap's top is returned to the system only above this (512 MiB)
TRIM_THRESHOLD = 512 * 1024 * 1024
#: extra memory asked for on every heap extension (64 MiB), so fewer extensions
TOP_PAD = 64 * 1024 * 1024

# mallopt's parameter numbers (glibc's malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


def keep_freed_memory() -> bool:
    """Set glibc's mmap threshold, trim threshold and top padding (the constants above);
    returns whether every setting was taken (False on other C libraries and systems)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = (
        (_M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (_M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (_M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(param, value) == 1 for param, value in settings)
