"""Durable file replacement (a finished file appears whole at its path, or not at all)
and the lock that keeps two runs from writing one output.

Data goes to a temporary file in the destination's folder, is synced to disk, and is
renamed over the destination with ``os.replace`` (atomic on POSIX and Windows); the
folder is then synced so that the rename itself survives a power cut.

:class:`FileLock` is an OS lock (``flock``) on a small file beside the output: the kernel
releases it when its process ends, however it ends (a crash, SIGKILL), so a lock is never
left stale. Without ``fcntl`` (Windows) it locks nothing.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from typing import IO, Iterator

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

__all__ = ["FileLock", "LOCK_MARK", "atomic_write", "missing_folder", "move_into_place",
           "sync_folder"]

#: What a lock file of serfast's holds (a file that holds anything else is not one).
LOCK_MARK = b"serfast lock\n"


def missing_folder(path: str) -> str | None:
    """Why ``path`` cannot be written because of its folder (one line: it does not exist,
    or is not writable), or None. Every output check says it in these words."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"cannot write {path}: folder {folder} does not exist"
    if not os.access(folder, os.W_OK | os.X_OK):
        return f"cannot write {path}: folder {folder} is not writable"
    return None


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


class FileLock:
    """An exclusive lock on the file ``path`` (created if missing), held by this process
    from :meth:`acquire` until :meth:`release` or its end."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock; False if another process holds it. Raises FileExistsError when
        ``path`` is a file serfast did not write (it is left alone)."""
        if fcntl is None:
            return True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:  # the holder before us may have removed the file as it released it
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        held = os.pread(fd, len(LOCK_MARK) + 1, 0)
        if held not in (b"", LOCK_MARK):
            os.close(fd)
            raise FileExistsError(f"{self.path} exists and is not a lock of serfast's")
        if not held:
            os.write(fd, LOCK_MARK)
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file and drop the lock (no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.path)  # while held: a process waiting on it will retry
        os.close(self._fd)
        self._fd = None
