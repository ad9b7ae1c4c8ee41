"""Deposit addresses: one per (network, user), derived at the next index, never reused."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import asyncpg

from chaingate.chains.base import DerivedAddress
from chaingate.domain import AddressRow


def _row(r: asyncpg.Record) -> AddressRow:
    return AddressRow(
        r["id"], r["network"], r["user_id"], r["derivation_index"], r["address"], r["match_key"]
    )


_COLUMNS = "id, network, user_id, derivation_index, address, match_key"


async def _find(conn: asyncpg.Connection, network: str, user_id: str) -> AddressRow | None:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM deposit_addresses WHERE network = $1 AND user_id = $2",
        network,
        user_id,
    )
    return None if row is None else _row(row)


async def addresses_after(
    conn: asyncpg.Connection, network: str, after_id: int, limit: int
) -> list[AddressRow]:
    """The next ``limit`` issued addresses of ``network`` with an id above ``after_id``."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM deposit_addresses
            WHERE network = $1 AND id > $2 ORDER BY id LIMIT $3""",
        network,
        after_id,
        limit,
    )
    return [_row(r) for r in rows]


async def issue_address(
    pool: asyncpg.Pool, network: str, user_id: str, derive: Callable[[int], DerivedAddress]
) -> tuple[AddressRow, bool]:
    """The user's address on ``network`` and whether it was created now.

    Concurrency-safe: the counter row lock serialises issuers of one network, and the user is
    looked up again under it, so a racing request for the same user gets the winner's row and
    no index is burnt.
    """
    async with pool.acquire() as conn:
        existing = await _find(conn, network, user_id)
        if existing is not None:
            return existing, False
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO address_counters (network) VALUES ($1) ON CONFLICT DO NOTHING", network
            )
            index = await conn.fetchval(
                "SELECT next_index FROM address_counters WHERE network = $1 FOR UPDATE", network
            )
            existing = await _find(conn, network, user_id)
            if existing is not None:
                return existing, False
            derived = derive(int(index))
            await conn.execute(
                "UPDATE address_counters SET next_index = next_index + 1 WHERE network = $1",
                network,
            )
            row = await conn.fetchrow(
                f"""INSERT INTO deposit_addresses
                      (network, user_id, derivation_index, address, match_key)
                    VALUES ($1, $2, $3, $4, $5) RETURNING {_COLUMNS}""",
                network,
                user_id,
                derived.index,
                derived.address,
                derived.match_key,
            )
        return _row(row), True


async def keys_since(
    conn: asyncpg.Connection,
    networks: Sequence[str],
    after_id: int,
    page: int,
    consume: Callable[[list[tuple[int, str]]], None],
) -> int:
    """Hand ``consume`` the (id, match_key) of every address of ``networks`` above
    ``after_id``, by id, ``page`` rows at a time; return how many. One query read through a
    server-side cursor: no caller holds millions of rows at once, and the rows are sorted once
    (a keyset walk of LIMIT queries can re-sort the whole table per page when the planner's
    statistics are stale, as after a bulk import)."""
    count = 0
    async with conn.transaction():
        cursor = await conn.cursor(
            """SELECT id, match_key FROM deposit_addresses
               WHERE network = ANY($1::text[]) AND id > $2 ORDER BY id""",
            list(networks),
            after_id,
        )
        while rows := await cursor.fetch(page):
            consume([(r[0], r[1]) for r in rows])  # bigint and text: int and str already
            count += len(rows)
    return count


async def owners(
    conn: asyncpg.Connection, networks: Sequence[str], keys: Sequence[str]
) -> dict[str, AddressRow]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM deposit_addresses
            WHERE network = ANY($1::text[]) AND match_key = ANY($2::text[])""",
        list(networks),
        list(set(keys)),
    )
    return {r["match_key"]: _row(r) for r in rows}
