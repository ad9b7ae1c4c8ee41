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
