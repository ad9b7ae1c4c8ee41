"""Account state of the TRON devnet: TRX, TRC-10 and TRC-20 balances, and how txs change them.

No TVM: a TRC-20 "contract" is a token ledger the devnet understands natively. ``transfer`` calls
with the standard ABI encoding move balances and emit a Transfer log shaped as mainnet's (20-byte
hex address without the 41 prefix, topics without 0x); a failed call changes no token balance.
Every transaction pays for its bandwidth and energy as costs.py says, failed calls included.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from chaingate.chains.tron.addresses import any_to_raw
from chaingate.devnet.tron_node import costs

TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SEL_TRANSFER = "a9059cbb"  # transfer(address,uint256)
SEL_BALANCE_OF = "70a08231"  # balanceOf(address)
CONSTANT_ENERGY = 935  # a view call's energy_used in a dry run


class ContractValidateError(Exception):
    """The tx is refused at broadcast, as java-tron's CONTRACT_VALIDATE_ERROR."""


@dataclass
class Trc20:
    address: bytes  # 21 bytes
    symbol: str
    decimals: int
    owner: bytes
    balances: dict[bytes, int] = field(default_factory=dict)


@dataclass
class Ledger:
    trx: dict[bytes, int] = field(default_factory=dict)
    trc10: dict[bytes, dict[str, int]] = field(default_factory=dict)
    trc20: dict[bytes, Trc20] = field(default_factory=dict)
    trc10_names: dict[str, str] = field(default_factory=dict)  # token id -> name
    net: dict[bytes, costs.Usage] = field(default_factory=dict)  # free bandwidth used

    def clone(self) -> Ledger:
        return copy.deepcopy(self)

    def exists(self, address: bytes) -> bool:
        return address in self.trx


@dataclass
class Outcome:
    """What executing one transaction produced (the node turns it into ret + TransactionInfo)."""

    contract_ret: str = "SUCCESS"
    logs: list[dict[str, Any]] = field(default_factory=list)
    contract_result: str = ""
    energy: int = 0
    message: str = ""
    bill: costs.Bill = field(default_factory=costs.Bill)


@dataclass(frozen=True)
class Run:
    """What executing a transaction needs beyond the state: prices, block time, its size."""

    params: costs.Params
    now: int  # block timestamp, ms
    size: int  # bandwidth bytes (costs.tx_size)
    fee_limit: int = 0


def _word_address(word: str) -> bytes:
    return bytes([0x41]) + bytes.fromhex(word[-40:])


def decode_transfer_call(data: str) -> tuple[bytes, int]:
    """(to 21 bytes, amount) of ``transfer(address,uint256)`` call data (hex, no 0x)."""
    if len(data) != 8 + 128 or not data.startswith(SEL_TRANSFER):
        raise ValueError("not a transfer(address,uint256) call")
    return _word_address(data[8:72]), int(data[72:136], 16)


def validate(
    ledger: Ledger, kind: str, value: dict[str, Any], params: costs.Params, fee_limit: int = 0
) -> None:
    """Broadcast-time checks java-tron makes before a tx enters the pool."""
    owner = any_to_raw(value["owner_address"])
    if kind == "TransferContract":
        amount = int(value["amount"])
        to = any_to_raw(value["to_address"])
        if amount <= 0:
            raise ContractValidateError("Amount must be greater than 0.")
        if to == owner:
            raise ContractValidateError("Cannot transfer TRX to yourself.")
        # TransferActuator: a new recipient adds the system contract's account-creation fee
        fee = 0 if ledger.exists(to) else params.create_new_account_fee
        if ledger.trx.get(owner, 0) < amount + fee:
            raise ContractValidateError(
                "Validate TransferContract error, balance is not sufficient."
            )
    elif kind == "TransferAssetContract":
        token = bytes.fromhex(value["asset_name"]).decode()
        if token not in ledger.trc10_names:
            raise ContractValidateError("No asset!")
        if ledger.trc10.get(owner, {}).get(token, 0) < int(value["amount"]):
            raise ContractValidateError("assetBalance is not sufficient.")
    elif kind == "TriggerSmartContract":
        if any_to_raw(value["contract_address"]) not in ledger.trc20:
            raise ContractValidateError("No contract or not a smart contract")
        if not 0 <= fee_limit <= params.max_fee_limit:
            raise ContractValidateError(f"feeLimit must be >= 0 and <= {params.max_fee_limit}")
    else:
        raise ContractValidateError(f"contract type {kind} is not supported by the devnet")
    if not ledger.exists(owner):
        raise ContractValidateError("Validate TransferContract error, no OwnerAccount.")


def apply(ledger: Ledger, kind: str, value: dict[str, Any], fail: str | None, run: Run) -> Outcome:
    """Execute a validated transaction against ``ledger``: fees always, transfers on success.

    Raises costs.ResourceInsufficient (before changing anything) when the bandwidth is unpaid.
    """
    owner = any_to_raw(value["owner_address"])
    to = any_to_raw(value["to_address"]) if "to_address" in value else b""
    creates = kind == "TransferContract" and not ledger.exists(to)
    usage = ledger.net.get(owner, costs.Usage())
    bill, ledger.net[owner] = costs.bandwidth(
        run.params, usage, ledger.trx.get(owner, 0), run.size, run.now, creates
    )
    ledger.trx[owner] -= bill.net_fee
    if kind == "TransferContract":
        amount = int(value["amount"])
        if creates:
            bill.create_fee = run.params.create_new_account_fee
        ledger.trx[owner] -= amount + bill.create_fee
        ledger.trx[to] = ledger.trx.get(to, 0) + amount
        return Outcome(bill=bill)
    if kind == "TransferAssetContract":
        amount = int(value["amount"])
        token = bytes.fromhex(value["asset_name"]).decode()
        ledger.trc10[owner][token] -= amount
        ledger.trc10.setdefault(to, {})[token] = ledger.trc10.get(to, {}).get(token, 0) + amount
        ledger.trx.setdefault(to, 0)
        return Outcome(bill=bill)
    outcome = _trigger(ledger, owner, value, fail, run)
    bill.energy_used = outcome.energy
    bill.energy_fee = outcome.energy * run.params.energy_fee
    ledger.trx[owner] -= bill.energy_fee
    outcome.bill = bill
    return outcome


def transfer_energy(ledger: Ledger, token: Trc20, owner: bytes, data: str) -> int | None:
    """Energy a ``transfer`` call uses as the dry run sees it; None when it would revert."""
    try:
        to, amount = decode_transfer_call(data)
    except ValueError:
        return None
    if token.balances.get(owner, 0) < amount:
        return None
    if token.balances.get(to, 0) > 0:
        return costs.TRC20_ENERGY_HOLDER
    return costs.TRC20_ENERGY_NEW_HOLDER


def _trigger(
    ledger: Ledger, owner: bytes, value: dict[str, Any], fail: str | None, run: Run
) -> Outcome:
    token = ledger.trc20[any_to_raw(value["contract_address"])]
    limit = costs.energy_limit(run.params, run.fee_limit, ledger.trx.get(owner, 0))
    data = value.get("data", "")
    needed = transfer_energy(ledger, token, owner, data)
    if fail == "REVERT" or needed is None:
        used = min(limit, costs.TRC20_ENERGY_HOLDER // 2)
        return Outcome("REVERT", energy=used, message="REVERT opcode executed")
    needed += run.params.extra_energy
    if fail == "OUT_OF_ENERGY" or needed > limit:
        # java-tron burns the whole energy limit of a call that runs out
        message = (
            "Not enough energy for 'SSTORE' operation executing: "
            f"curInvokeEnergyLimit[{limit}], curOpEnergy[20000], usedEnergy[{limit}]"
        )
        return Outcome("OUT_OF_ENERGY", energy=limit, message=message)
    to, amount = decode_transfer_call(data)
    token.balances[owner] -= amount
    token.balances[to] = token.balances.get(to, 0) + amount
    log = {
        "address": token.address[1:].hex(),
        "topics": [TRANSFER_TOPIC, owner[1:].hex().rjust(64, "0"), to[1:].hex().rjust(64, "0")],
        "data": f"{amount:064x}",
    }
    return Outcome(logs=[log], contract_result=f"{1:064x}", energy=needed)


def constant_call(ledger: Ledger, contract: bytes, selector: str, parameter: str) -> str | None:
    """Result word (hex) of a view call on a devnet TRC-20, None when it cannot answer."""
    token = ledger.trc20.get(contract)
    if token is None:
        return None
    if selector in ("balanceOf(address)", SEL_BALANCE_OF):
        return f"{token.balances.get(_word_address(parameter), 0):064x}"
    if selector == "decimals()":
        return f"{token.decimals:064x}"
    if selector == "totalSupply()":
        return f"{sum(token.balances.values()):064x}"
    if selector in ("symbol()", "name()"):
        text = token.symbol.encode()
        return f"{32:064x}{len(text):064x}" + text.hex().ljust(64, "0")
    return None
