"""Durable file replacement: a finished file appears whole at its path, or not at all.

Data goes to a temporary file in the destination's folder, is synced to disk, and is
renamed over the destination with ``os.replace`` (atomic on POSIX and Windows); the
folder is then synced so that the rename itself survives a power cut.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Iterator

__all__ = ["atomic_write", "move_into_place", "sync_folder"]


def sync_folder(folder: str) -> None:
    """Make the entries of ``folder`` (renames, new files) durable; no-op on Windows."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def move_into_place(src: str, dst: str) -> None:
    """Rename the finished, already synced file ``src`` to ``dst`` (replacing it), durably."""
    os.replace(src, dst)
    sync_folder(os.path.dirname(os.path.abspath(dst)))


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a new temporary file beside ``path``; on a clean exit, move it to ``path``.

    ``mode`` is ``"w"`` (text) or ``"wb"`` (binary); ``kwargs`` go to :func:`open`
    (``encoding``, ``newline``). The temporary file gets a fresh name
    (``path.<random>.tmp``, created exclusively, never overwriting anything) and the
    permissions :func:`open` gives. If the block raises, the temporary file is removed
    and ``path`` is left as it was.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', not {mode!r}")
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    fh = open(tmp, mode.replace("w", "x"), **kwargs)
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        move_into_place(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
