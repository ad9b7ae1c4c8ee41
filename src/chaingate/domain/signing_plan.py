"""The signing plans (EVM, TRON, Bitcoin): what the chain says, fetched for the signer by the
planner. TRON and Bitcoin plans carry a ``family`` tag; an EVM plan has none (or "evm").

The signer never talks to a node (SPEC 7: keys only in the signer, and the signer imports no
provider or web code). The planner, in the broadcaster role, reads ``eth_feeHistory``, the hot
address's pending nonce and an ``eth_estimateGas`` per token output, and stores them with the
job as this plan (JSON, integers as decimal strings). It is unauthenticated input, so the signer
only lets it move what is safe to move: fees (always held under the approved fee cap), gas
(the fee cap bounds gas x max fee), and the first nonce (never below what it recorded itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaingate.errors import ValidationError

PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class EvmPlan:
    from_address: str  # lowercase 0x
    chain_nonce: int  # eth_getTransactionCount(from, "pending") when planned
    next_base_fee: int
    recent_tips: tuple[int, ...]
    gas: dict[int, int]  # withdrawal id -> eth_estimateGas (token outputs; native may omit)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "from_address": self.from_address,
            "chain_nonce": str(self.chain_nonce),
            "next_base_fee": str(self.next_base_fee),
            "recent_tips": [str(t) for t in self.recent_tips],
            "gas": {str(k): str(v) for k, v in self.gas.items()},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EvmPlan:
        try:
            if data.get("version") != PLAN_VERSION or data.get("family", "evm") != "evm":
                raise ValueError("version")
            plan = cls(
                from_address=str(data["from_address"]).lower(),
                chain_nonce=_uint(data["chain_nonce"]),
                next_base_fee=_uint(data["next_base_fee"]),
                recent_tips=tuple(_uint(t) for t in data["recent_tips"]),
                gas={int(k): _uint(v) for k, v in dict(data["gas"]).items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed signing plan ({exc})") from None
        return plan


def _uint(value: object) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise ValueError(f"not a decimal string: {value!r}")
    return int(value)


TRON_PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class TronPlan:
    """The TRON signing plan: the solidified reference block, the chain's prices, the energy a
    dry run of each TRC-20 output uses, which destinations are not activated yet, and the hot
    address's TRX. The signer bounds all of it: fee_limit under the approved fee cap, the
    expiration from the registry and the clock, never from the plan."""

    from_address: str  # T-address
    ref_number: int
    ref_block_id: str
    ref_timestamp: int  # ms
    energy_price: int  # sun per energy (getEnergyFee)
    bandwidth_price: int  # sun per byte (getTransactionFee)
    activation_fee: int  # sun a TRX transfer to an inactive account burns (0.1 + 1 TRX)
    hot_balance: int  # sun
    energy: dict[int, int]  # withdrawal id -> dry-run energy (TRC-20 outputs)
    inactive: frozenset[int]  # withdrawal ids whose destination is not an account yet

    def to_json(self) -> dict[str, Any]:
        return {
            "version": TRON_PLAN_VERSION,
            "family": "tron",
            "from_address": self.from_address,
            "ref_number": str(self.ref_number),
            "ref_block_id": self.ref_block_id,
            "ref_timestamp": str(self.ref_timestamp),
            "energy_price": str(self.energy_price),
            "bandwidth_price": str(self.bandwidth_price),
            "activation_fee": str(self.activation_fee),
            "hot_balance": str(self.hot_balance),
            "energy": {str(k): str(v) for k, v in self.energy.items()},
            "inactive": sorted(self.inactive),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TronPlan:
        try:
            if data.get("version") != TRON_PLAN_VERSION or data.get("family") != "tron":
                raise ValueError("version")
            return cls(
                from_address=str(data["from_address"]),
                ref_number=_uint(data["ref_number"]),
                ref_block_id=str(data["ref_block_id"]),
                ref_timestamp=_uint(data["ref_timestamp"]),
                energy_price=_uint(data["energy_price"]),
                bandwidth_price=_uint(data["bandwidth_price"]),
                activation_fee=_uint(data["activation_fee"]),
                hot_balance=_uint(data["hot_balance"]),
                energy={int(k): _uint(v) for k, v in dict(data["energy"]).items()},
                inactive=frozenset(int(i) for i in data["inactive"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed signing plan ({exc})") from None


BITCOIN_PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class PlannedCoin:
    """One coin the planner chose to spend: the outpoint, its value and whose key it is."""

    txid: str
    vout: int
    amount: int
    chain: int
    index: int


@dataclass(frozen=True, slots=True)
class BitcoinPlan:
    """The Bitcoin signing plan: the coins to spend (chosen by the planner from the store's
    UTXO set), the fee rate (sat/kvB, from ``estimatesmartfee`` within the registry's floor and
    cap) and the change address's index on the hot wallet's internal chain. The signer derives
    each coin's script and the change script itself, signs over each coin's amount (BIP143, so
    a wrong amount only makes an invalid signature), and holds the fee under the approved cap.
    A replacement's plan also carries the node's incremental relay fee (sat/kvB, from
    ``getnetworkinfo``), by which it must beat the transaction it replaces (BIP125)."""

    coins: tuple[PlannedCoin, ...]
    fee_rate: int
    change_index: int
    incremental_rate: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": BITCOIN_PLAN_VERSION,
            "family": "bitcoin",
            "fee_rate": str(self.fee_rate),
            "change_index": str(self.change_index),
            **(
                {}
                if self.incremental_rate is None
                else {"incremental_rate": str(self.incremental_rate)}
            ),
            "coins": [
                {
                    "txid": c.txid,
                    "vout": str(c.vout),
                    "amount": str(c.amount),
                    "chain": str(c.chain),
                    "index": str(c.index),
                }
                for c in self.coins
            ],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BitcoinPlan:
        try:
            if data.get("version") != BITCOIN_PLAN_VERSION or data.get("family") != "bitcoin":
                raise ValueError("version")
            coins = tuple(
                PlannedCoin(
                    txid=_txid(c["txid"]),
                    vout=_uint(c["vout"]),
                    amount=_uint(c["amount"]),
                    chain=_uint(c["chain"]),
                    index=_uint(c["index"]),
                )
                for c in data["coins"]
            )
            if not coins or len({(c.txid, c.vout) for c in coins}) != len(coins):
                raise ValueError("no coins, or a coin twice")
            incremental = data.get("incremental_rate")
            plan = cls(
                coins,
                _uint(data["fee_rate"]),
                _uint(data["change_index"]),
                None if incremental is None else _uint(incremental),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValidationError(f"malformed signing plan ({exc})") from None
        return plan


def _txid(value: object) -> str:
    if not isinstance(value, str) or len(value) != 64 or value.strip("0123456789abcdef"):
        raise ValueError(f"not a txid: {value!r}")
    return value
