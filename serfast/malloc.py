"""Keep freed memory in the process: the engine allocates and frees the same few MB per clip.

Each clip's decoded audio (~0.5 MB), STFT frames and spectra (~0.9 MB each) are freed as
soon as the clip is done. With glibc's default settings, blocks that large come straight
from the kernel (``mmap``) or from the top of the heap, which ``free`` hands back
(trims) once 128 KiB are unused: the next clip faults the same pages in again and the
kernel zeroes them. That cost is invisible in a profile (it lands on whichever call
first touches the memory); bench/RESULTS.md has what it costs ``serfast extract``.
"""

from __future__ import annotations

import ctypes
import sys

#: ``mallopt`` parameters of glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def reuse_freed_memory(mmap_threshold: int = 8 << 20, trim_threshold: int = 32 << 20) -> bool:
    """Make this process's malloc serve blocks up to ``mmap_threshold`` bytes from its heap
    and keep up to ``trim_threshold`` free bytes at the heap's top, so per-clip arrays
    reuse memory already mapped. Process-wide and irreversible; costs at most about
    ``trim_threshold`` of resident memory. Returns False where the C library is not
    glibc (macOS, Windows, musl): nothing changes there.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        mallopt(_M_TRIM_THRESHOLD, trim_threshold))
