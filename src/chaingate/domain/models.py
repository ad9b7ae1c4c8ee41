"""What a chain adapter hands the watcher, and the deposit state machine."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DepositStatus(StrEnum):
    SEEN = "seen"  # known but unconfirmed (in a mempool); never credited from here
    CONFIRMING = "confirming"  # in a block, counting confirmations
    CREDITED = "credited"  # the ledger credit is in the outbox (and then delivered)
    ORPHANED = "orphaned"  # its block or mempool entry vanished before it was credited
    REVERSED = "reversed"  # its block vanished after credit: reversal sent and alerted
    REJECTED = "rejected"  # a rule refused it; ``reason`` says which


# Which transitions the store makes. A transaction mined again (after a reorg) is decided anew
# from its new block, so orphaned, reversed and rejected rows may take any block verdict.
DEPOSIT_TRANSITIONS: dict[DepositStatus, frozenset[DepositStatus]] = {
    DepositStatus.SEEN: frozenset(
        {DepositStatus.CONFIRMING, DepositStatus.ORPHANED, DepositStatus.REJECTED}
    ),
    DepositStatus.CONFIRMING: frozenset(
        {DepositStatus.CREDITED, DepositStatus.ORPHANED, DepositStatus.REJECTED}
    ),
    # Reversed by a reorg, or by a new block that says something else about it.
    DepositStatus.CREDITED: frozenset({DepositStatus.REVERSED}),
    DepositStatus.ORPHANED: frozenset(
        {DepositStatus.SEEN, DepositStatus.CONFIRMING, DepositStatus.REJECTED}
    ),
    DepositStatus.REVERSED: frozenset(
        {DepositStatus.SEEN, DepositStatus.CONFIRMING, DepositStatus.REJECTED}
    ),
    DepositStatus.REJECTED: frozenset({DepositStatus.CONFIRMING}),
}


class RejectReason(StrEnum):
    FAILED_TX = "failed_tx"  # reverted / receipt status 0 / contractRet not SUCCESS
    NO_TRANSFER_EVENT = "no_transfer_event"  # transfer() succeeded but moved nothing
    UNLISTED_TOKEN = "unlisted_token"  # token contract or TRC-10 id not in the registry
    DUST = "dust"  # below the asset's minimum deposit
    DEPOSITS_DISABLED = "deposits_disabled"  # asset listed with deposits switched off
    WATCH_ONLY_NETWORK = "watch_only_network"  # funds arrived on a network we do not credit
    UNKNOWN_ADDRESS = "unknown_address"  # matched a key no issued address of ours owns


@dataclass(frozen=True, slots=True)
class BlockRef:
    number: int
    hash: str
    parent_hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    number: int  # best block the endpoints agree on
    finalized: int | None = None  # e.g. TRON's solidified head; None where the chain has none


@dataclass(frozen=True, slots=True)
class Transfer:
    """A movement of value to one of our addresses, decoded from a block or a mempool.

    ``position`` makes (network, txid, position) unique: ``native`` for a transaction's own
    value, ``log:<index>`` for a token event, ``vout:<n>`` for a Bitcoin output,
    ``trace:<path>`` for an internal ETH transfer, ``trc10`` for a TRC-10 transfer.
    ``to`` is the network's canonical match key (lowercase 0x hex on EVM, the scriptPubKey hex on
    Bitcoin, the base58 T-address on TRON).
    """

    network: str
    txid: str
    position: str
    to: str
    amount: int
    asset: str | None  # listed asset symbol, or None for an unlisted token
    contract: str | None = None  # token contract / id as seen on chain; None for native
    block_number: int | None = None  # None while unconfirmed
    block_hash: str | None = None
    reject_reason: RejectReason | None = None  # decided by the adapter (failed tx, unlisted)
    coinbase: bool = False


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Consecutive blocks ``start..end`` and the transfers to watched addresses inside them."""

    blocks: tuple[BlockRef, ...]
    transfers: tuple[Transfer, ...]
