"""Which xpub a network's deposit addresses come from (as a fingerprint), and where they start."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class XpubRecord:
    network: str
    fingerprint: str
    start_index: int
    history_checked_to: int | None


async def get(conn: asyncpg.Connection, network: str) -> XpubRecord | None:
    row = await conn.fetchrow(
        """SELECT network, fingerprint, start_index, history_checked_to
           FROM xpub_fingerprints WHERE network = $1""",
        network,
    )
    return None if row is None else XpubRecord(**dict(row))


async def first_issued(conn: asyncpg.Connection, network: str) -> tuple[int, str] | None:
    """(derivation index, match key) of the network's lowest issued address, if any."""
    row = await conn.fetchrow(
        """SELECT derivation_index, match_key FROM deposit_addresses
           WHERE network = $1 ORDER BY derivation_index LIMIT 1""",
        network,
    )
    return None if row is None else (int(row["derivation_index"]), str(row["match_key"]))


async def lock_counter(conn: asyncpg.Connection, network: str) -> None:
    """Serialise with every issuer of ``network`` (issue_address takes the same row lock)."""
    await conn.execute(
        "INSERT INTO address_counters (network) VALUES ($1) ON CONFLICT DO NOTHING", network
    )
    await conn.execute("SELECT 1 FROM address_counters WHERE network = $1 FOR UPDATE", network)


async def record(conn: asyncpg.Connection, rec: XpubRecord) -> None:
    """Record the fingerprint and move the counter to its start (inside the caller's
    transaction, after ``lock_counter``)."""
    await conn.execute(
        """INSERT INTO xpub_fingerprints (network, fingerprint, start_index, history_checked_to)
           VALUES ($1, $2, $3, $4) ON CONFLICT (network) DO NOTHING""",
        rec.network,
        rec.fingerprint,
        rec.start_index,
        rec.history_checked_to,
    )
    await conn.execute(
        """UPDATE address_counters SET next_index = GREATEST(next_index, $2)
           WHERE network = $1""",
        rec.network,
        rec.start_index,
    )
