"""What a transaction costs on the TRON devnet: bandwidth, energy and the account-creation fee.

java-tron's rules in the form the devnet needs them (see tests/data/tron/README.md for sources):

- Bandwidth: a transaction uses ``size`` bytes = its signed protobuf with ``ret`` cleared plus
  64 bytes per contract (``MAX_RESULT_SIZE_IN_TX``). Each account has ``free_net_limit`` free
  bytes a day, recovering linearly over 24 h of block time; when the free bytes do not cover the
  whole size, ``size * transaction_fee`` sun are burned instead (receipt ``net_fee``).
- A TRX transfer to an account that does not exist yet burns ``create_account_fee`` in place of
  bandwidth and ``create_new_account_fee_in_system_contract`` more (mainnet: 0.1 + 1 TRX).
- Energy: a contract call burns ``energy_used * energy_fee`` sun. Its energy limit is
  ``min(fee_limit, balance) // energy_fee``; a call needing more ends OUT_OF_ENERGY having used
  the whole limit, and that fee is burned all the same.

No staking, delegation or dynamic energy penalty: the devnet's accounts only ever burn TRX.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY_MS = 86_400_000
MAX_RESULT_SIZE_IN_TX = 64  # java-tron's Constant.MAX_RESULT_SIZE_IN_TX, per contract
MAXIMUM_TIME_UNTIL_EXPIRATION = DAY_MS  # java-tron's Constant.MAXIMUM_TIME_UNTIL_EXPIRATION
TRC20_ENERGY_HOLDER = 14_631  # mainnet USDT transfer to an address already holding USDT
TRC20_ENERGY_NEW_HOLDER = 29_631  # ... to an address holding none (a zero slot is written)


class ResourceInsufficient(Exception):
    """java-tron's AccountResourceInsufficientException: the bandwidth cannot be paid."""


@dataclass
class Params:
    """Chain parameters (their getchainparameters keys in the comments); devnet-adjustable."""

    energy_fee: int = 420  # getEnergyFee, sun per energy
    transaction_fee: int = 1_000  # getTransactionFee, sun per byte of bandwidth
    free_net_limit: int = 600  # getFreeNetLimit, free bytes per account per day
    create_account_fee: int = 100_000  # getCreateAccountFee
    create_new_account_fee: int = 1_000_000  # getCreateNewAccountFeeInSystemContract
    max_fee_limit: int = 15_000_000_000  # getMaxFeeLimit
    # Devnet switch, not a chain parameter: energy a TRC-20 transfer really uses above what the
    # dry run (triggerconstantcontract) reports, so an estimate can fall short on purpose.
    extra_energy: int = 0

    def chain_parameters(self) -> list[dict[str, object]]:
        return [
            {"key": "getTransactionFee", "value": self.transaction_fee},
            {"key": "getCreateAccountFee", "value": self.create_account_fee},
            {
                "key": "getCreateNewAccountFeeInSystemContract",
                "value": self.create_new_account_fee,
            },
            {"key": "getCreateNewAccountBandwidthRate", "value": 1},
            {"key": "getEnergyFee", "value": self.energy_fee},
            {"key": "getFreeNetLimit", "value": self.free_net_limit},
            {"key": "getMaxFeeLimit", "value": self.max_fee_limit},
        ]


@dataclass
class Usage:
    """Free bandwidth an account has used, as of block time ``at`` (ms)."""

    used: int = 0
    at: int = 0

    def recovered(self, now: int) -> int:
        # java-tron recovers usage linearly over a 24 h window
        if now - self.at >= DAY_MS:
            return 0
        return self.used * (DAY_MS - (now - self.at)) // DAY_MS


@dataclass
class Bill:
    """What one transaction burned and used (turned into TransactionInfo.fee and receipt)."""

    net_usage: int = 0  # free bytes used
    net_fee: int = 0  # sun burned for bandwidth (or account creation)
    create_fee: int = 0  # sun burned by the system contract for a new account
    energy_used: int = 0
    energy_fee: int = 0
    notes: dict[str, int] = field(default_factory=dict)

    @property
    def fee(self) -> int:
        return self.net_fee + self.create_fee + self.energy_fee


def tx_size(raw_bytes: bytes, signatures: list[str], contracts: int = 1) -> int:
    """Bytes of bandwidth a signed transaction uses."""
    fields = [len(raw_bytes)] + [len(sig) // 2 for sig in signatures]
    signed = sum(1 + _varint_size(n) + n for n in fields)  # tag, length, bytes
    return signed + MAX_RESULT_SIZE_IN_TX * contracts


def _varint_size(value: int) -> int:
    return max(1, (value.bit_length() + 6) // 7)


def bandwidth(
    params: Params,
    usage: Usage,
    balance: int,
    size: int,
    now: int,
    creates_account: bool,
) -> tuple[Bill, Usage]:
    """The bandwidth part of the bill and the owner's free usage after it; raises when unpaid."""
    if creates_account:
        if balance < params.create_account_fee:
            raise ResourceInsufficient("Account resource insufficient error.")
        return Bill(net_fee=params.create_account_fee), usage
    left = usage.recovered(now)
    if params.free_net_limit - left >= size:
        return Bill(net_usage=size), Usage(left + size, now)
    burn = size * params.transaction_fee
    if balance < burn:
        raise ResourceInsufficient("Account resource insufficient error.")
    return Bill(net_fee=burn), usage


def energy_limit(params: Params, fee_limit: int, balance: int) -> int:
    """Energy a call may use: what fee_limit and the balance left after bandwidth pay for."""
    return max(0, min(fee_limit, balance)) // params.energy_fee
