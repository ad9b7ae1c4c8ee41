"""Pure EVM decoding, on recorded real mainnet responses (tests/data/evm/SOURCES.md) and on
hand-built edge cases that a real chain also produces."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaingate.chains.evm import codec
from chaingate.chains.evm.addresses import address_bytes
from chaingate.chains.evm.rpc import RawCallFrame, RawLog, RawTx
from chaingate.errors import ChainDataError

DATA = Path(__file__).parent / "data" / "evm"


def _result(name: str) -> Any:
    return json.loads((DATA / name).read_text())["result"]


def _word(value: int | str) -> str:
    if isinstance(value, int):
        return f"{value:064x}"
    return "0" * 24 + value.removeprefix("0x").lower()


def _log(to: str, amount: int, **changes: Any) -> RawLog:
    raw: dict[str, Any] = {
        "address": "0xB62132e35a6c13ee1EE0f84dC5d40bad8d815206",
        "topics": [codec.TRANSFER_TOPIC, "0x" + _word("0x" + "11" * 20), "0x" + _word(to)],
        "data": "0x" + _word(amount),
        "blockNumber": "0x10",
        "blockHash": "0x" + "ab" * 32,
        "transactionHash": "0x" + "CD" * 32,
        "transactionIndex": "0x0",
        "logIndex": "0x7",
    }
    raw.update(changes)
    return raw  # type: ignore[return-value]


def _tx(to: str | None, data: str, value: str = "0x0") -> RawTx:
    return {  # type: ignore[typeddict-item]
        "hash": "0x" + "01" * 32,
        "to": to,
        "input": data,
        "value": value,
        "transactionIndex": "0x3",
    }


USER = "0x" + "a1" * 20
TOKEN = "0xb62132e35a6c13ee1ee0f84dc5d40bad8d815206"


def test_real_mainnet_transfer_logs_decode_to_exact_amounts() -> None:
    logs = _result("erc20_transfer_logs_block_0x76250.json")
    decoded = [codec.decode_transfer_log(entry) for entry in logs]
    assert decoded == [
        codec.TokenLog(
            contract="0xf4eced2f682ce333f96f2d8966c613ded8fc95dd",
            sender="0x1b63142628311395ceafeea5667e7c9026c862ca",
            to="0xac4df82fe37ea2187bc8c011a23d743b4f39019a",
            amount=100_000,
            log_index=0,
            txid="0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8",
        ),
        codec.TokenLog(
            contract="0xf4eced2f682ce333f96f2d8966c613ded8fc95dd",
            sender="0x9b22a80d5c7b3374a05b446081f97d0a34079e7f",
            to="0x66f183060253cfbe45beff1e6e7ebbe318c81e56",
            amount=200_000,
            log_index=1,
            txid="0xcea6f89720cc1d2f46cc7a935463ae0b99dd5fad9c91bb7357de5421511cee49",
        ),
    ]
    assert codec.topic_recipient(logs[1]) == address_bytes(
        "0x66f183060253cfbe45beff1e6e7ebbe318c81e56"
    )


def test_amounts_beyond_64_bits_stay_exact() -> None:
    amount = 2**256 - 1
    event = codec.decode_transfer_log(_log(USER, amount))
    assert event is not None and event.amount == amount
    assert event.contract == TOKEN and event.to == USER and event.log_index == 7


@pytest.mark.parametrize(
    "changes",
    [
        # ERC-721 Transfer: same topic0, token id as a 4th indexed topic, empty data.
        {
            "topics": [codec.TRANSFER_TOPIC, "0x" + "0" * 64, "0x" + _word(USER), "0x" + _word(28)],
            "data": "0x",
        },
        {
            "topics": [
                "0x8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925",
                "0x" + "0" * 64,
                "0x" + _word(USER),
            ]
        },  # Approval
        {"data": "0x" + _word(5) + _word(6)},  # two data words: not ERC-20's Transfer
        {"data": "0x1234"},
        {"topics": [codec.TRANSFER_TOPIC, "0x" + "0" * 64, "0x" + "ff" * 12 + USER[2:]]},
    ],
    ids=["erc721", "approval", "long-data", "short-data", "dirty-address-padding"],
)
def test_logs_that_are_not_erc20_transfers_are_ignored(changes: dict[str, Any]) -> None:
    assert codec.decode_transfer_log(_log(USER, 5, **changes)) is None


def test_transfer_call_input_gives_recipient_and_amount() -> None:
    data = codec.SELECTOR_TRANSFER + _word(USER) + _word(10**18)
    assert codec.decode_token_call(_tx(TOKEN.upper().replace("0X", "0x"), data)) == (
        codec.TokenCall(contract=TOKEN, to=USER, amount=10**18)
    )


def test_transfer_from_call_input_gives_recipient_not_owner() -> None:
    owner = "0x" + "22" * 20
    data = codec.SELECTOR_TRANSFER_FROM + _word(owner) + _word(USER) + _word(7)
    assert codec.decode_token_call(_tx(TOKEN, data)) == codec.TokenCall(TOKEN, USER, 7)


def test_trailing_calldata_is_tolerated_like_the_solidity_decoder() -> None:
    data = codec.SELECTOR_TRANSFER + _word(USER) + _word(9) + "deadbeef"
    assert codec.decode_token_call(_tx(TOKEN, data)) == codec.TokenCall(TOKEN, USER, 9)


@pytest.mark.parametrize(
    "data",
    [
        "0x",
        codec.SELECTOR_TRANSFER + _word(USER),  # amount missing
        "0x095ea7b3" + _word(USER) + _word(9),  # approve(address,uint256)
        codec.SELECTOR_TRANSFER + "ff" * 12 + USER[2:] + _word(9),  # not an address word
    ],
)
def test_other_or_truncated_inputs_are_not_token_calls(data: str) -> None:
    assert codec.decode_token_call(_tx(TOKEN, data)) is None


def test_contract_creation_is_not_a_token_call() -> None:
    data = codec.SELECTOR_TRANSFER + _word(USER) + _word(9)
    assert codec.decode_token_call(_tx(None, data)) is None


def test_native_value_is_exact_and_garbage_is_chain_data_error() -> None:
    assert codec.native_value(_tx(USER, "0x", "0x56bc75e2d63100000")) == 100 * 10**18
    with pytest.raises(ChainDataError):
        codec.native_value(_tx(USER, "0x", "100"))


def test_real_callcode_frame_pays_nobody() -> None:
    # Block 1,000,000: a CALLCODE carries value but runs the callee's code in the caller's own
    # account; the callee receives nothing. The top-level values are not internal transfers.
    traces = _result("calltracer_block_1000000.json")
    watched = {
        address_bytes("0x273930d21e01ee25e4c219b63259d214872220a2"),
        address_bytes("0xc083e9947cf02b8ffc7d3090ae9aea72df98fd47"),
        address_bytes("0xdf190dc7190dfba737d7777a163445b7fff16133"),
    }
    assert [codec.internal_transfers(t["result"], watched) for t in traces] == [[], []]


def test_real_failed_top_frame_yields_nothing() -> None:
    traces = _result("calltracer_block_0xf45bf_error.json")
    watched = {address_bytes("0x627da06356442122f08e2203c749978151e55800")}
    assert codec.internal_transfers(traces[0]["result"], watched) == []


def test_real_selfdestruct_frame_without_beneficiary_is_skipped() -> None:
    traces = _result("calltracer_block_0xf7105_selfdestruct.json")
    assert codec.internal_transfers(traces[0]["result"], {address_bytes(USER)}) == []


def _frame(
    to: str, value: int, *calls: RawCallFrame, kind: str = "CALL", error: str | None = None
) -> RawCallFrame:
    frame: dict[str, Any] = {"type": kind, "to": to, "value": hex(value)}
    if calls:
        frame["calls"] = list(calls)
    if error:
        frame["error"] = error
    return frame  # type: ignore[return-value]


def test_nested_frames_get_paths_and_reverted_subtrees_are_skipped() -> None:
    other = "0x" + "b2" * 20
    top = _frame(
        "0x" + "cc" * 20,
        0,
        _frame(other, 1, _frame(USER, 0), _frame(USER.upper().replace("0X", "0x"), 5)),
        # This frame reverted: its own value and that of every frame below it never moved.
        _frame(other, 0, _frame(USER, 7), error="execution reverted"),
        _frame(USER, 11, kind="SELFDESTRUCT"),
        _frame(USER, 13, kind="DELEGATECALL"),
        _frame(USER, 17, kind="STATICCALL"),
    )
    assert codec.internal_transfers(top, {address_bytes(USER)}) == [
        codec.InternalTransfer(path="0.1", to=USER, amount=5),
        codec.InternalTransfer(path="2", to=USER, amount=11),
    ]


def test_deep_call_trees_do_not_hit_the_recursion_limit() -> None:
    frame = _frame(USER, 3)
    for _ in range(1100):
        frame = _frame("0x" + "cc" * 20, 0, frame)
    found = codec.internal_transfers(frame, {address_bytes(USER)})
    assert [(t.amount, t.path.count(".")) for t in found] == [(3, 1099)]
