"""The content hash of a withdrawal batch (SPEC section 7): what the approvers approve and the
signer signs.

The hash covers everything the signer will sign for: the network, its chain id, the asset, its
contract and decimals, each output (withdrawal id, destination, amount) and the fee cap. It is
SHA-256 (hex) over a canonical JSON document: keys sorted, no spaces, ASCII only, integers of
any size written as decimal strings, outputs ordered by withdrawal id, and the encoding's
``version`` inside the document, so a later encoding can never produce a hash an earlier one
produced for other content. The API computes it when a batch is made; the signer recomputes it
from the very outputs it is about to sign and refuses a mismatch.

Pure: no I/O, no store, API or provider imports (the signer imports this module).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass

from chaingate.errors import ValidationError

CONTENT_HASH_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})


@dataclass(frozen=True, slots=True)
class BatchOutput:
    """One payment of a batch: a withdrawal, where it goes (the network's canonical form of the
    address, e.g. EIP-55), and how much in the asset's base units."""

    withdrawal_id: int
    destination: str
    amount: int


@dataclass(frozen=True, slots=True)
class BatchContent:
    """Everything a batch's approval covers. ``fee_cap`` is the most one transaction of the
    batch may pay in network fees, in base units of the network's native coin."""

    network: str
    chain_id: int | None  # EVM chain id; None where the network has none
    asset: str
    contract: str | None  # canonical contract (lowercase 0x hex on EVM); None for native
    decimals: int
    outputs: tuple[BatchOutput, ...]
    fee_cap: int

    @property
    def total(self) -> int:
        return sum(o.amount for o in self.outputs)

    @classmethod
    def of(
        cls,
        *,
        network: str,
        chain_id: int | None,
        asset: str,
        contract: str | None,
        decimals: int,
        outputs: Iterable[BatchOutput],
        fee_cap: int,
    ) -> BatchContent:
        """The content with its outputs in canonical order (by withdrawal id)."""
        ordered = tuple(sorted(outputs, key=lambda o: o.withdrawal_id))
        return cls(network, chain_id, asset, contract, decimals, ordered, fee_cap)


def canonical_document(content: BatchContent, version: int = CONTENT_HASH_VERSION) -> bytes:
    """The exact bytes that are hashed; ValidationError for content no batch may have."""
    if version not in SUPPORTED_VERSIONS:
        raise ValidationError(f"unknown content hash version {version}")
    _check(content)
    document = {
        "version": version,
        "network": content.network,
        "chain_id": None if content.chain_id is None else str(content.chain_id),
        "asset": content.asset,
        "contract": content.contract,
        "decimals": content.decimals,
        "fee_cap": str(content.fee_cap),
        "outputs": [
            {
                "withdrawal_id": str(o.withdrawal_id),
                "destination": o.destination,
                "amount": str(o.amount),
            }
            for o in sorted(content.outputs, key=lambda o: o.withdrawal_id)
        ],
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
        "ascii"
    )


def content_hash(content: BatchContent, version: int = CONTENT_HASH_VERSION) -> str:
    """SHA-256 hex of the canonical document of ``content``."""
    return hashlib.sha256(canonical_document(content, version)).hexdigest()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check(content: BatchContent) -> None:
    if not content.network or not content.asset:
        raise ValidationError("batch content needs a network and an asset")
    if content.chain_id is not None and (not _is_int(content.chain_id) or content.chain_id <= 0):
        raise ValidationError("chain id must be a positive integer")
    if not _is_int(content.decimals) or not 0 <= content.decimals <= 77:
        raise ValidationError("decimals must be an integer from 0 to 77")
    if not _is_int(content.fee_cap) or content.fee_cap <= 0:
        raise ValidationError("the fee cap must be a positive integer (native base units)")
    if not content.outputs:
        raise ValidationError("a batch needs at least one output")
    seen: set[int] = set()
    for output in content.outputs:
        if not _is_int(output.withdrawal_id) or output.withdrawal_id in seen:
            raise ValidationError(f"withdrawal id {output.withdrawal_id!r} is invalid or repeated")
        seen.add(output.withdrawal_id)
        if not _is_int(output.amount) or output.amount <= 0:
            raise ValidationError(f"withdrawal {output.withdrawal_id}: amount must be positive")
        if not output.destination or output.destination != output.destination.strip():
            raise ValidationError(f"withdrawal {output.withdrawal_id}: bad destination")
