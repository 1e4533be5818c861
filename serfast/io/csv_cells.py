"""CSV cells that a spreadsheet will not run: text that came from a user (file names,
labels, error messages) is written with a leading ``'`` when it starts with a character
that makes a spreadsheet read the cell as a formula (``= + - @``, tab, carriage return).

A cell that starts with ``'`` gets one more, so :func:`read_cell` gives back exactly the
text that was written (``'=x`` -> ``''=x`` -> ``'=x``).
"""

from __future__ import annotations

__all__ = ["FORMULA_STARTS", "read_cell", "safe_cell", "safe_row"]

#: First characters that make a spreadsheet treat a cell as a formula.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """``value``, with ``'`` in front when it is text starting with a formula character or
    with ``'``; anything that is not text (numbers) is returned as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS + ("'",)):
        return "'" + value
    return value


def safe_row(row: list) -> list:
    """:func:`safe_cell` of every cell of ``row``."""
    return [safe_cell(v) for v in row]


def read_cell(value: str) -> str:
    """The text :func:`safe_cell` was given for the cell ``value`` read back from a CSV."""
    return value[1:] if value.startswith("'") else value
