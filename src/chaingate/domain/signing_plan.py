"""The EVM signing plan: what the chain says, fetched for the signer by the planner.

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
            if data.get("version") != PLAN_VERSION:
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
