"""Plain aligned tables for people (``--json`` is for scripts): numbers right-aligned, every
column as wide as its widest cell, long free text last so it can run on."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    value: Callable[[Mapping[str, Any]], Any]
    right: bool = False


def col(header: str, key: str, *, right: bool = False) -> Column:
    return Column(header, lambda row: row.get(key), right)


def cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    grid = [[c.header for c in columns]] + [[cell(c.value(r)) for c in columns] for r in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(columns))]
    lines = []
    for line in grid:
        parts = [
            text.rjust(w) if c.right else text.ljust(w)
            for text, w, c in zip(line, widths, columns, strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def emit(data: Any, as_json: bool, rows: Sequence[Mapping[str, Any]], columns: Sequence[Column],
         empty: str) -> None:  # fmt: skip
    """Print ``data`` as JSON for scripts, or ``rows`` as a table (``empty`` when none)."""
    if as_json:
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        print(render(rows, columns) if rows else empty)


def say(data: Any, as_json: bool, line: str) -> None:
    """Print an action's answer: the JSON for scripts, else one line for people."""
    if as_json:
        emit(data, True, [], [], "")
    else:
        print(line)


def amount(units: Any, decimals: Any) -> str:
    """Base units (a string from the API) with the asset's decimals; integer arithmetic only."""
    if units is None:
        return "-"
    value = int(units)
    if not isinstance(decimals, int) or decimals <= 0:
        return f"{value:,}"
    whole, frac = divmod(abs(value), 10**decimals)
    return f"{'-' if value < 0 else ''}{whole:,}.{frac:0{decimals}d}"
