"""What the deposit rules read (an issued address) and write (a deposit row to record)."""

from __future__ import annotations

from dataclasses import dataclass

from chaingate.domain.models import DepositStatus


@dataclass(frozen=True, slots=True)
class AddressRow:
    """A deposit address issued to a user: derivation index, display form and match key."""

    id: int
    network: str
    user_id: str
    index: int
    address: str
    match_key: str


@dataclass(frozen=True, slots=True)
class DepositInput:
    """A deposit as one block (or mempool) shows it; recorded by (network, txid, position)."""

    network: str
    txid: str
    position: str
    to_key: str
    amount: int
    status: DepositStatus
    asset: str | None = None
    contract: str | None = None
    decimals: int | None = None
    address_id: int | None = None
    user_id: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    reason: str | None = None
    required_confirmations: int = 0
    coinbase: bool = False
