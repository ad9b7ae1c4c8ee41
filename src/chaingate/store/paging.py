"""Keyset pages, newest first, for every list the API serves (deposits, withdrawals, batches).

The WHERE clause holds only the filters given, so each combination is an index range scan in id
order, not ``$1 IS NULL OR ...`` conditions that a generic plan cannot use an index for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def keyset_page(
    select: str,
    id_column: str,
    filters: Sequence[tuple[str, object | None]],
    before_id: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SQL of ``select`` narrowed to the ``(column, value)`` filters whose value is not
    None and to ids below ``before_id``, newest first, at most ``limit``; and its arguments.
    Column names come from code, never from input."""
    conditions: list[str] = []
    args: list[Any] = []
    for column, value in filters:
        if value is not None:
            args.append(value)
            conditions.append(f"{column} = ${len(args)}")
    if before_id is not None:
        args.append(before_id)
        conditions.append(f"{id_column} < ${len(args)}")
    args.append(limit)
    clause = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    return f"{select} {clause} ORDER BY {id_column} DESC LIMIT ${len(args)}", args
