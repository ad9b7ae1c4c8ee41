"""Hex quantities and 32-byte hashes as EVM JSON-RPC answers carry them, checked on the way in.

Every answer check of ``rpc.py`` and ``receiptcheck.py`` goes through these two, hundreds of
thousands of times per catch-up range set: they stay small.
"""

from __future__ import annotations

import re

from chaingate.errors import ChainDataError

_HASH32 = re.compile(r"0x[0-9a-fA-F]{64}")


def is_hash32(value: object) -> bool:
    return isinstance(value, str) and _HASH32.fullmatch(value) is not None


def hex_int(value: object, what: str) -> int:
    """A JSON-RPC quantity ("0x1a") as int; ChainDataError when it is not one."""
    if not isinstance(value, str) or not value.startswith("0x"):
        raise ChainDataError(f"{what}: expected a hex quantity, got {value!r:.80}")
    try:
        return int(value, 16)
    except ValueError as exc:
        raise ChainDataError(f"{what}: expected a hex quantity, got {value!r:.80}") from exc
