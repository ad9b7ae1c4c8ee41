"""What the withdrawal functions need to know, gathered once (from the settings) and passed in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chaingate.chains.base import AddressCodec
from chaingate.domain import Asset, Network, WithdrawalLimits
from chaingate.errors import ValidationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$")


@dataclass(frozen=True)
class WithdrawalRules:
    """The networks (with their assets and limits), their address codecs, the approval quorum
    and the key that seals approvals (never stored in the database)."""

    networks: Mapping[str, Network]
    codecs: Mapping[str, AddressCodec]
    seal_key: bytes = field(default=b"", repr=False)
    quorum: int = 2

    def network(self, name: object) -> Network:
        if not isinstance(name, str) or name not in self.networks:
            known = ", ".join(sorted(self.networks))
            raise ValidationError(f"unknown network {name!r} (known: {known})")
        return self.networks[name]

    def withdrawable(self, network_name: object, symbol: object) -> tuple[Network, Asset]:
        """The network and asset of a withdrawal; ValidationError when either is unknown or
        the asset cannot be withdrawn there."""
        network = self.network(network_name)
        if network.watch_only:
            raise ValidationError(f"{network.name} is watch-only: nothing is sent from it")
        asset = next((a for a in network.assets if a.symbol == symbol), None)
        if asset is None:
            known = ", ".join(a.symbol for a in network.assets)
            raise ValidationError(f"unknown asset {symbol!r} on {network.name} (known: {known})")
        if not asset.withdrawals_enabled or asset.withdrawal_limits is None:
            raise ValidationError(f"withdrawals of {asset.symbol} on {network.name} are disabled")
        return network, asset


def limits_of(asset: Asset) -> WithdrawalLimits:
    if asset.withdrawal_limits is None:
        raise ValidationError(f"withdrawals of {asset.symbol} are disabled")
    return asset.withdrawal_limits


def name_field(body: Mapping[str, Any], key: str) -> str:
    """An identifier field (request_id, user_id): 1-128 letters, digits and ``_.:@-``."""
    value = body.get(key)
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(f"'{key}' must be 1-128 characters of letters, digits and _.:@-")
    return value


def text_field(body: Mapping[str, Any], key: str, *, limit: int = 200) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"'{key}' is required and must be a non-empty string")
    if len(value) > limit:
        raise ValidationError(f"'{key}' is longer than {limit} characters")
    return value


def amount_field(body: Mapping[str, Any], key: str = "amount") -> int:
    """A positive amount in base units: a JSON string of ASCII digits, nothing else (no sign,
    no decimal point, no exponent, no leading zeros); never a JSON number, which loses
    precision above 2^53."""
    value = body.get(key)
    if not isinstance(value, str):
        raise ValidationError(f"'{key}' must be a string of digits (base units), e.g. \"1500\"")
    if not value or len(value) > 78 or not value.isascii() or not value.isdigit():
        raise ValidationError(
            f"'{key}' must be a positive integer in base units written with the digits 0-9 "
            "only (no sign, decimal point or exponent)"
        )
    if value.startswith("0"):
        raise ValidationError(f"'{key}' must be positive and without leading zeros")
    return int(value)
