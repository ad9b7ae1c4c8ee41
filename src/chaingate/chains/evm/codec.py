"""Pure decoding of raw EVM shapes: Transfer logs, token call inputs, native values, traces.

No I/O and no policy: these functions say what a log, an input or a call frame *means*; the
adapter decides which of them become deposits and with what reject reason.
All addresses come out as match keys (lowercase 0x hex); the watched set is probed with their
20 raw bytes (``addresses.address_bytes``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from chaingate.chains.base import WatchedAddresses
from chaingate.chains.evm.addresses import address_bytes
from chaingate.chains.evm.hexdata import hex_int
from chaingate.chains.evm.rpc import RawCallFrame, RawLog, RawTx

# keccak256("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
SELECTOR_TRANSFER = "0xa9059cbb"  # transfer(address,uint256)
SELECTOR_TRANSFER_FROM = "0x23b872dd"  # transferFrom(address,address,uint256)
_WORD = 64  # hex digits in one 32-byte ABI word
_ADDRESS_PAD = "0" * 24  # an ABI-encoded address is 12 zero bytes then 20 address bytes
# Call frame types that move value to ``to``. CALLCODE/DELEGATECALL run foreign code in the
# caller's own account, CREATE's value funds a new contract: none of them pays ``to``.
_VALUE_FRAMES = frozenset({"CALL", "SELFDESTRUCT"})


@dataclass(frozen=True, slots=True)
class TokenLog:
    """An ERC-20 Transfer event."""

    contract: str
    sender: str
    to: str
    amount: int
    log_index: int
    txid: str


@dataclass(frozen=True, slots=True)
class TokenCall:
    """A top-level ``transfer``/``transferFrom`` call as its input encodes it."""

    contract: str
    to: str
    amount: int


@dataclass(frozen=True, slots=True)
class InternalTransfer:
    """Value moved by a successful call frame below the top level of a transaction."""

    path: str  # child indices from the top frame, e.g. "0.1"
    to: str
    amount: int


def topic_recipient(log: RawLog) -> bytes | None:
    """Cheap first look: the raw ``to`` of a 3-topic log, to probe the watched set with,
    without validating the rest (``decode_transfer_log`` does, for the few that match)."""
    topics = log["topics"]
    if len(topics) != 3 or len(topics[2]) != 66:
        return None
    try:
        return bytes.fromhex(topics[2][26:])
    except ValueError:
        return None


def _word_address(word: str) -> str | None:
    """The address in a 32-byte ABI word (64 hex digits), or None when the padding is dirty."""
    if len(word) != _WORD or word[:24] != _ADDRESS_PAD:
        return None
    return "0x" + word[24:].lower()


def _word_uint(word: str) -> int | None:
    try:
        return int(word, 16) if len(word) == _WORD else None
    except ValueError:
        return None


def decode_transfer_log(log: RawLog) -> TokenLog | None:
    """The ERC-20 Transfer a log encodes, or None for any other log.

    Exactly 3 topics (ERC-721 has the same topic0 with the token id indexed as a 4th) and exactly
    one 32-byte data word; anything else is not an ERC-20 Transfer and is ignored.
    """
    topics = log["topics"]
    if len(topics) != 3 or topics[0].lower() != TRANSFER_TOPIC:
        return None
    data = log["data"]
    if len(data) != 2 + _WORD or not data.startswith("0x"):
        return None
    sender = _word_address(topics[1][2:])
    to = _word_address(topics[2][2:])
    amount = _word_uint(data[2:])
    if sender is None or to is None or amount is None:
        return None
    return TokenLog(
        contract=log["address"].lower(),
        sender=sender,
        to=to,
        amount=amount,
        log_index=hex_int(log["logIndex"], "logIndex"),
        txid=log["transactionHash"].lower(),
    )


def decode_token_call(tx: RawTx) -> TokenCall | None:
    """The recipient and amount of a top-level transfer/transferFrom call, or None.

    Used to find token sends to us that produced no Transfer event (failed or "returns false"
    tokens). Trailing bytes after the arguments are tolerated, as the Solidity decoder does.
    """
    to_contract = tx["to"]
    data = tx["input"]
    if to_contract is None or len(data) < 10:
        return None
    selector = data[:10].lower()
    if selector == SELECTOR_TRANSFER:
        args = data[10 : 10 + 2 * _WORD]
        if len(args) != 2 * _WORD:
            return None
        to, amount = _word_address(args[:_WORD]), _word_uint(args[_WORD:])
    elif selector == SELECTOR_TRANSFER_FROM:
        args = data[10 : 10 + 3 * _WORD]
        if len(args) != 3 * _WORD or _word_address(args[:_WORD]) is None:
            return None
        to, amount = _word_address(args[_WORD : 2 * _WORD]), _word_uint(args[2 * _WORD :])
    else:
        return None
    if to is None or amount is None:
        return None
    return TokenCall(contract=to_contract.lower(), to=to, amount=amount)


def native_value(tx: RawTx) -> int:
    """Wei a transaction itself carries to its ``to``."""
    return hex_int(tx["value"], "tx value")


def internal_transfers(top: RawCallFrame, watched: WatchedAddresses) -> list[InternalTransfer]:
    """Value-carrying frames below ``top`` (depth >= 1) that pay a watched address.

    A frame with an ``error`` was rolled back, and so was everything it called: the whole
    subtree is skipped. A failed top frame therefore yields nothing.
    """
    if "error" in top:
        return []
    found: list[InternalTransfer] = []
    for path, frame in _successful_frames(top.get("calls", ()), ""):
        if frame["type"] not in _VALUE_FRAMES:
            continue
        to = frame.get("to")
        if to is None:
            continue
        if address_bytes(to) not in watched:
            continue
        amount = hex_int(frame.get("value", "0x0"), "call value")
        if amount > 0:
            found.append(InternalTransfer(path=path, to=to.lower(), amount=amount))
    return found


def _successful_frames(
    calls: list[RawCallFrame] | tuple[()], prefix: str
) -> Iterator[tuple[str, RawCallFrame]]:
    # Iterative walk: a call tree may be 1024 frames deep, beyond Python's recursion limit.
    stack = [(f"{prefix}{i}", frame) for i, frame in reversed(list(enumerate(calls)))]
    while stack:
        path, frame = stack.pop()
        if "error" in frame:
            continue  # rolled back, and so were all the frames it called
        yield path, frame
        children = frame.get("calls", ())
        stack.extend((f"{path}.{i}", child) for i, child in reversed(list(enumerate(children))))
