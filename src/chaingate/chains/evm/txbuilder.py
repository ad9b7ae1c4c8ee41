"""Pure EVM transaction building: EIP-1559 (type 2) transfers of ETH and ERC-20 tokens.

No I/O and no keys: the figures a transaction needs from the chain (``eth_feeHistory``,
``eth_estimateGas``) are fetched by the planner and handed in, and the signer signs the dict
this module returns. So the same inputs always give the same transaction, and the signer can
rebuild and check exactly what it signs.

Fees: ``maxPriorityFeePerGas`` is a percentile of recent tips, ``maxFeePerGas`` room for the
base fee to double plus the tip; both are held under the fee cap that was approved with the
batch (the registry's cap). A cap too low for the next block's base fee is an error, not a
transaction that would sit unmined. A replacement at the same nonce must raise both fields by
at least ``REPLACEMENT_BUMP`` (geth's and erigon's rule is 10 %), still within the cap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from chaingate.chains.evm.codec import SELECTOR_TRANSFER
from chaingate.errors import FeeCapError as FeeCapError  # re-exported; TRON raises it too
from chaingate.errors import ValidationError

NATIVE_TRANSFER_GAS = 21_000
REPLACEMENT_BUMP_PERCENT = 125  # over the old fees; above the nodes' 110 % so a bump is accepted
DEFAULT_GAS_MARGIN_PERCENT = 120
_UINT256 = 2**256
_HEX40 = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True, slots=True)
class FeeQuote:
    """What the planner read from ``eth_feeHistory``: the base fee of the next block (the last
    ``baseFeePerGas`` entry) and the tips paid at one percentile in recent blocks."""

    next_base_fee: int
    recent_tips: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int


@dataclass(frozen=True, slots=True)
class EvmTransfer:
    """One withdrawal output as one transaction. ``contract`` None: native coin."""

    chain_id: int
    nonce: int
    to: str
    amount: int
    contract: str | None
    gas: int
    fees: Fees


def quote_from_fee_history(history: dict[str, Any]) -> FeeQuote:
    """A ``FeeQuote`` from an ``eth_feeHistory`` result asked with one reward percentile."""
    base = history.get("baseFeePerGas") or []
    rewards = history.get("reward") or []
    if not base:
        raise ValidationError("eth_feeHistory without baseFeePerGas")
    tips = tuple(int(r[0], 16) for r in rewards if r)
    return FeeQuote(next_base_fee=int(base[-1], 16), recent_tips=tips)


def choose_fees(quote: FeeQuote, cap: int, *, min_tip: int = 1) -> Fees:
    """Fees for a new transaction: the median recent tip (at least ``min_tip``), and a max fee of
    twice the next base fee plus that tip, both held under ``cap``."""
    tip = max(min_tip, _median(quote.recent_tips))
    if quote.next_base_fee + tip > cap:
        raise FeeCapError(
            f"fee cap {cap} wei/gas is below the next base fee {quote.next_base_fee} plus tip {tip}"
        )
    return Fees(
        max_fee_per_gas=min(cap, 2 * quote.next_base_fee + tip), max_priority_fee_per_gas=tip
    )


def bump_fees(old: Fees, quote: FeeQuote, cap: int) -> Fees:
    """Fees for a replacement at the same nonce: at least ``REPLACEMENT_BUMP_PERCENT`` of the old
    ones and never below what a new transaction would pay now, within ``cap``."""
    fresh = Fees(
        max_fee_per_gas=2 * quote.next_base_fee + max(1, _median(quote.recent_tips)),
        max_priority_fee_per_gas=max(1, _median(quote.recent_tips)),
    )
    tip = max(_bumped(old.max_priority_fee_per_gas), fresh.max_priority_fee_per_gas)
    max_fee = max(_bumped(old.max_fee_per_gas), fresh.max_fee_per_gas, tip)
    if max_fee > cap:
        # The least a node accepts as a replacement is 110 %; go as high as the cap allows.
        floor = _bumped(old.max_fee_per_gas, 110)
        if floor > cap or tip > cap:
            raise FeeCapError(f"a replacement needs {floor} wei/gas, over the fee cap {cap}")
        max_fee = cap
    return Fees(max_fee_per_gas=max_fee, max_priority_fee_per_gas=min(tip, max_fee))


def gas_limit(estimate: int | None, contract: str | None, margin_percent: int) -> int:
    """Gas for one transfer: 21,000 for the native coin to an account without code, otherwise the
    node's estimate plus ``margin_percent`` (a token's storage writes vary with its state)."""
    if contract is None and estimate is None:
        return NATIVE_TRANSFER_GAS
    if estimate is None or estimate < NATIVE_TRANSFER_GAS:
        raise ValidationError("a token transfer needs the node's gas estimate")
    return -(-estimate * margin_percent // 100)


def erc20_transfer_data(to: str, amount: int) -> bytes:
    """Calldata of ``transfer(address,uint256)``."""
    if not 0 < amount < _UINT256:
        raise ValidationError("a token amount is a positive uint256")
    address = bytes.fromhex(checksum_address(to)[2:])
    return bytes.fromhex(SELECTOR_TRANSFER[2:]) + address.rjust(32, b"\0") + amount.to_bytes(32)


def unsigned_transaction(transfer: EvmTransfer) -> dict[str, Any]:
    """The type-2 transaction dict that ``Account.sign_transaction`` signs."""
    if transfer.amount <= 0:
        raise ValidationError("a transfer amount is positive")
    if transfer.fees.max_priority_fee_per_gas > transfer.fees.max_fee_per_gas:
        raise ValidationError("the tip cannot exceed the max fee")
    recipient = checksum_address(transfer.to)
    if transfer.contract is None:
        to, value, data = recipient, transfer.amount, b""
    else:
        to, value = checksum_address(transfer.contract), 0
        data = erc20_transfer_data(recipient, transfer.amount)
    return {
        "type": 2,
        "chainId": transfer.chain_id,
        "nonce": transfer.nonce,
        "to": to,
        "value": value,
        "data": data,
        "gas": transfer.gas,
        "maxFeePerGas": transfer.fees.max_fee_per_gas,
        "maxPriorityFeePerGas": transfer.fees.max_priority_fee_per_gas,
        "accessList": [],
    }


def checksum_address(text: str) -> str:
    """EIP-55 form of a 0x address (validated at intake; here only normalised)."""
    if not _HEX40.fullmatch(text):
        raise ValidationError("not a 0x address of 40 hex digits")
    return to_checksum_address(text)


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0


def _bumped(value: int, percent: int = REPLACEMENT_BUMP_PERCENT) -> int:
    return -(-value * percent // 100)
