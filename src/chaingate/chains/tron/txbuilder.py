"""Pure TRON transaction building: TRX ``TransferContract`` and TRC-20 ``transfer`` calls.

No I/O and no keys. What a transaction needs from the chain is handed in: the reference block
(read from the SOLIDIFIED chain, so a fork cannot take it away and fail TaPoS), the energy a dry
run (``triggerconstantcontract``) says the call uses, and the energy price
(``getchainparameters``' getEnergyFee). The bytes are written by ``chains/tron/proto.py``, the
same writer the devnet and the block-id checks use, and the txID is sha256 of exactly those
bytes: what java-tron recomputes and checks the signature against.

The reference block and the expiration are part of the signed bytes, so a transaction is alive
from its signing until its expiration and dead for good after it (java-tron refuses an expired
transaction, and a TaPoS reference older than 65 536 blocks). Nothing else may revive it: a
withdrawal whose transaction expired unseen is rebuilt as a NEW transaction or failed.

fee_limit: the dry run's energy x price, plus a margin for the estimate being short, all held
under the approved fee cap after the bandwidth the transaction may burn.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from chaingate.chains.tron.addresses import any_to_raw
from chaingate.chains.tron.proto import encode_raw_data
from chaingate.errors import FeeCapError, ValidationError

TYPE_URL = "type.googleapis.com/protocol.{}"
SELECTOR_TRANSFER = "a9059cbb"  # transfer(address,uint256)
DEFAULT_ENERGY_MARGIN_PERCENT = 30
DEFAULT_EXPIRATION_SECONDS = 60  # what java-tron's wallets use
MAX_EXPIRATION_SECONDS = 86_400  # java-tron refuses expirations over 24 h past its head
# Bytes a one-contract TRC-20 transfer uses (signed protobuf + 64): ~345 on mainnet; rounded up.
TRC20_TX_BYTES = 360
TRX_TX_BYTES = 280
_BLOCK_ID = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True)
class Reference:
    """The block a transaction names for TaPoS: its number, id and time (ms)."""

    number: int
    block_id: str
    timestamp: int

    def __post_init__(self) -> None:
        if not _BLOCK_ID.fullmatch(self.block_id) or int(self.block_id[:16], 16) != self.number:
            raise ValidationError(f"block id {self.block_id!r} is not block {self.number}'s")

    @property
    def ref_block_bytes(self) -> str:
        return self.block_id[12:16]  # the number's low two bytes

    @property
    def ref_block_hash(self) -> str:
        return self.block_id[16:32]


@dataclass(frozen=True, slots=True)
class TronTransfer:
    """One withdrawal output as one transaction. ``contract`` None: TRX."""

    owner: str  # the hot address (T-address)
    to: str
    amount: int
    contract: str | None
    fee_limit: int  # sun; 0 for a TRX transfer
    reference: Reference
    timestamp: int  # ms, when built
    expiration: int  # ms

    def __post_init__(self) -> None:
        if self.amount <= 0:
            raise ValidationError("amount must be positive")
        if self.contract is None and self.fee_limit:
            raise ValidationError("a TRX transfer has no fee_limit")
        if not self.timestamp < self.expiration <= self.timestamp + MAX_EXPIRATION_SECONDS * 1000:
            raise ValidationError("expiration must be within 24 h after the build time")


@dataclass(frozen=True, slots=True)
class BuiltTx:
    raw_data: dict[str, Any]  # java-tron's JSON, addresses as 41-hex
    raw_bytes: bytes
    txid: str  # sha256(raw_bytes), lowercase hex


def trc20_transfer_data(to: str, amount: int) -> str:
    """``transfer(address,uint256)`` call data (hex, no 0x)."""
    if not 0 < amount < 2**256:
        raise ValidationError("amount out of uint256 range")
    return SELECTOR_TRANSFER + any_to_raw(to)[1:].hex().rjust(64, "0") + f"{amount:064x}"


def expiration_for(now_ms: int, seconds: int) -> int:
    if not 1 <= seconds <= MAX_EXPIRATION_SECONDS:
        raise ValidationError(f"expiration must be 1..{MAX_EXPIRATION_SECONDS} s, not {seconds}")
    return now_ms + seconds * 1000


def fee_limit_for(
    energy: int,
    energy_price: int,
    fee_cap: int,
    *,
    bandwidth_price: int = 1_000,
    margin_percent: int = DEFAULT_ENERGY_MARGIN_PERCENT,
) -> int:
    """fee_limit of a TRC-20 transfer: the dry run's energy cost plus ``margin_percent``.

    FeeCapError when that and the bandwidth the transaction may burn exceed the approved cap: a
    smaller fee_limit would only buy an OUT_OF_ENERGY failure that burns the fee anyway."""
    if energy <= 0 or energy_price <= 0:
        raise ValidationError("energy and energy price must be positive")
    limit = -(-energy * energy_price * (100 + margin_percent) // 100)
    bandwidth = TRC20_TX_BYTES * bandwidth_price
    if limit + bandwidth > fee_cap:
        raise FeeCapError(
            f"fee_limit {limit} sun ({energy} energy at {energy_price} sun + "
            f"{margin_percent} %) and up to {bandwidth} sun of bandwidth exceed the fee cap "
            f"{fee_cap}"
        )
    return limit


def raw_data(tx: TronTransfer) -> dict[str, Any]:
    owner = any_to_raw(tx.owner).hex()
    if tx.contract is None:
        kind = "TransferContract"
        value: dict[str, Any] = {
            "owner_address": owner,
            "to_address": any_to_raw(tx.to).hex(),
            "amount": tx.amount,
        }
    else:
        kind = "TriggerSmartContract"
        value = {
            "owner_address": owner,
            "contract_address": any_to_raw(tx.contract).hex(),
            "data": trc20_transfer_data(tx.to, tx.amount),
        }
    raw: dict[str, Any] = {
        "contract": [
            {"parameter": {"value": value, "type_url": TYPE_URL.format(kind)}, "type": kind}
        ],
        "ref_block_bytes": tx.reference.ref_block_bytes,
        "ref_block_hash": tx.reference.ref_block_hash,
        "expiration": tx.expiration,
        "timestamp": tx.timestamp,
    }
    if tx.fee_limit:
        raw["fee_limit"] = tx.fee_limit
    return raw


def build(tx: TronTransfer) -> BuiltTx:
    raw = raw_data(tx)
    raw_bytes = encode_raw_data(raw)
    return BuiltTx(raw, raw_bytes, hashlib.sha256(raw_bytes).hexdigest())


def broadcast_body(raw: dict[str, Any], raw_bytes: bytes, signature: str) -> dict[str, Any]:
    """The ``/wallet/broadcasttransaction`` body of a signed transaction (same bytes each time)."""
    return {
        "visible": False,
        "txID": hashlib.sha256(raw_bytes).hexdigest(),
        "raw_data": raw,
        "raw_data_hex": raw_bytes.hex(),
        "signature": [signature],
    }
