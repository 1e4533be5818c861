"""The append-only journal behind resumable outputs (feature stores, label files).

Line 1 is a JSON header describing the run (inputs and options); every further line is a
JSON entry, appended only after the data it describes was flushed and synced. Every
append is flushed and synced before it returns, so a journaled entry survives a crash.
A resumed run keeps the entries up to the first torn or unusable line and rewrites the
journal (atomically) to exactly those, so later appends continue from durable state.
"""

from __future__ import annotations

import json
import os
from typing import Callable

from .files import atomic_write

__all__ = ["Journal"]


class Journal:
    """An open journal; make one with :meth:`create` or :meth:`resume`."""

    def __init__(self, path: str):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    @classmethod
    def create(cls, path: str, head: dict) -> Journal:
        """Start a new journal at ``path`` (replacing any) whose header is ``head``."""
        with atomic_write(path, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(head) + "\n")
        return cls(path)

    @classmethod
    def resume(cls, path: str, head: dict, error: type[Exception], changed: str,
               usable: Callable[[dict], bool] = lambda entry: True
               ) -> tuple[Journal, list[dict]]:
        """Reopen the journal at ``path`` for appending; also the entries it keeps.

        Raises ``error`` (one line) when the journal is damaged or its header differs from
        ``head`` (``changed`` says what to do then). Stops at a torn line or at the first
        entry for which ``usable`` is false, and rewrites the journal to the kept lines.
        """
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().split("\n")
        try:
            stored = json.loads(lines[0])
        except (json.JSONDecodeError, IndexError):
            raise error(f"{path} is damaged; delete it to start over") from None
        if stored != json.loads(json.dumps(head)):  # as stored: tuples become lists
            raise error(f"cannot resume: {changed}")
        kept, entries = [lines[0]], []
        for line in lines[1:]:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last line: everything before it is durable
            if not usable(entry):
                break
            entries.append(entry)
            kept.append(line)
        with atomic_write(path, "w", encoding="utf-8") as fh:
            fh.write("\n".join(kept) + "\n")
        return cls(path), entries

    def append(self, *entries: dict) -> None:
        """Append one JSON line per entry, then flush and sync them to disk."""
        for entry in entries:
            self._fh.write(json.dumps(entry) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def remove(self) -> None:
        """Close and delete the journal (its outputs are complete)."""
        self._fh.close()
        os.remove(self.path)
