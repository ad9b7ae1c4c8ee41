"""What became of a signed TRON withdrawal transaction, from the SOLIDIFIED chain (pure).

The tracker's TRON row: given what ``/walletsolidity/gettransactioninfobyid`` and
``gettransactionbyid`` answer for the txid, and the solidified chain's time, one of
- ``Settled``: in a solidified block. ``confirmed`` only when both the transaction's
  ``contractRet`` and the info's result say SUCCESS; ``failed`` (OUT_OF_ENERGY, REVERT, ...)
  when both say it failed: the fee was burned all the same and is reported. The two
  disagreeing is a lying or broken endpoint (ChainDataError: ask again, elsewhere);
- ``Fate.REBROADCAST``: not solidified, and the chain's head is still before the expiration:
  the SAME bytes may be sent again (a node answers DUP_TRANSACTION_ERROR if it has them);
- ``Fate.WAIT``: past the expiration on the head but not yet provably dead: keep looking;
- ``Fate.EXPIRED``: dead for good. java-tron includes a transaction only in a block whose parent
  is older than its expiration (Manager.validateCommon checks it against the head block time),
  so once the PARENT of the solidified head is at or past the expiration, no block that could
  still come can hold it, and every block that could have is solidified and was looked at.
  Only then may the withdrawal be rebuilt (a NEW transaction) or failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from chaingate.errors import ChainDataError


class Fate(StrEnum):
    REBROADCAST = "rebroadcast"
    WAIT = "wait"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Settled:
    status: str  # "confirmed" | "failed"
    result: str  # SUCCESS, OUT_OF_ENERGY, REVERT, ...
    block_number: int
    fee: int  # sun burned in total (TransactionInfo.fee)
    energy_used: int
    energy_fee: int
    net_usage: int  # free bandwidth bytes
    net_fee: int  # sun burned for bandwidth or activation


def settle(
    txid: str,
    info: dict[str, Any],
    tx: dict[str, Any],
    *,
    expiration_ms: int,
    head_ms: int,
    solid_parent_ms: int,
) -> Settled | Fate:
    """``info``/``tx``: the solidified answers for ``txid`` (``{}`` when not there)."""
    if not info:
        if solid_parent_ms >= expiration_ms:
            return Fate.EXPIRED
        return Fate.REBROADCAST if head_ms < expiration_ms else Fate.WAIT
    if info.get("id") != txid or (tx and tx.get("txID") != txid):
        raise ChainDataError(f"the node answered for another transaction than {txid}")
    receipt = info.get("receipt") or {}
    info_result = str(receipt.get("result") or ("FAILED" if info.get("result") else "SUCCESS"))
    rets = tx.get("ret") or [{}]
    contract_ret = str(rets[0].get("contractRet") or "")
    if info.get("result") == "FAILED" and info_result == "SUCCESS":
        info_result = "FAILED"
    if (info_result == "SUCCESS") != (contract_ret == "SUCCESS"):
        raise ChainDataError(
            f"{txid}: contractRet {contract_ret!r} and the receipt's {info_result!r} disagree"
        )
    return Settled(
        status="confirmed" if info_result == "SUCCESS" else "failed",
        result=info_result,
        block_number=_uint(info, "blockNumber"),
        fee=_uint(info, "fee"),
        energy_used=_uint(receipt, "energy_usage_total"),
        energy_fee=_uint(receipt, "energy_fee"),
        net_usage=_uint(receipt, "net_usage"),
        net_fee=_uint(receipt, "net_fee"),
    )


def after_expiry(rebuilds: int, max_rebuilds: int = 1) -> str:
    """An expired withdrawal is rebuilt (a new transaction, new reference and expiration) at
    most ``max_rebuilds`` times, then failed and its funds returned to the ledger."""
    return "rebuild" if rebuilds < max_rebuilds else "fail"


def _uint(data: dict[str, Any], key: str) -> int:
    value = data.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ChainDataError(f"{key} is not a non-negative integer: {value!r}")
    return value
