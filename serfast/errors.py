"""Error messages of one line: what every stage records for a bad file, clip or device.

Pure: imports nothing, so any module may use it without loading audio or feature code.
"""

from __future__ import annotations

__all__ = ["one_line"]


def one_line(err: BaseException, with_type: bool = False) -> str:
    """``err`` as one line (for error rows and messages), optionally prefixed by its type."""
    text = " ".join(str(err).split())
    if with_type:
        return f"{type(err).__name__}: {text}"
    return text or type(err).__name__
