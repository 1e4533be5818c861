"""The append-only journal behind resumable outputs (feature stores, label files).

Line 1 is a JSON header describing the run (inputs and options); every further line is a
JSON entry written only after the data it describes was flushed and synced. A resumed
run keeps the entries up to the first torn or unusable line and rewrites the journal to
exactly those, so later appends continue from durable state.
"""

from __future__ import annotations

import json
from typing import Callable


def resume_journal(path: str, head: dict, error: type[Exception], changed: str,
                   usable: Callable[[dict], bool] = lambda entry: True) -> list[dict]:
    """Entries of the journal at ``path`` that an interrupted run can keep.

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
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(kept) + "\n")
    return entries
