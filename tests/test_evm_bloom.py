"""logsBloom and block-hash checks on a recorded mainnet block (483920, tests/data/evm)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaingate.chains.evm.bloom import admits, bloom_mask, hex_bytes, log_mask, parse_bloom
from chaingate.chains.evm.codec import TRANSFER_TOPIC
from chaingate.chains.evm.header import header_hash
from chaingate.chains.evm.logcheck import suspects, transfer_masks
from chaingate.errors import ChainDataError

DATA = Path(__file__).parent / "data" / "evm"
HEADER: dict[str, Any] = json.loads((DATA / "block_0x76250_header.json").read_text())
LOGS: list[dict[str, Any]] = json.loads(
    (DATA / "erc20_transfer_logs_block_0x76250.json").read_text()
)["result"]
TOKEN = "0xf4eced2f682ce333f96f2d8966c613ded8fc95dd"  # the token both logs come from
USDT = "0xdac17f958d2ee523a2206206994597c13d831ec7"  # did not exist then: not in this bloom


def test_the_bloom_rebuilt_from_the_blocks_logs_is_the_headers() -> None:
    rebuilt = 0
    for entry in LOGS:
        rebuilt |= log_mask(entry["address"], entry["topics"])
    assert rebuilt == parse_bloom(HEADER["logsBloom"])


def test_the_bloom_admits_what_the_block_holds_and_not_an_absent_token() -> None:
    bloom = parse_bloom(HEADER["logsBloom"])
    masks = transfer_masks([TOKEN, USDT], TRANSFER_TOPIC)
    assert admits(bloom, masks[TOKEN])
    assert not admits(bloom, masks[USDT])
    assert admits(bloom, bloom_mask(hex_bytes(LOGS[0]["topics"][2])))  # a recipient topic


def test_an_answer_without_the_tokens_transfers_is_suspect() -> None:
    masks = transfer_masks([TOKEN, USDT], TRANSFER_TOPIC)
    assert suspects([HEADER], LOGS, masks) == {}  # type: ignore[list-item]
    assert suspects([HEADER], [], masks) == {0x76250: [TOKEN]}  # type: ignore[list-item]


def test_the_header_fields_hash_to_the_block_hash() -> None:
    assert header_hash(HEADER) == HEADER["hash"]
    assert header_hash({**HEADER, "logsBloom": "0x" + "00" * 256}) != HEADER["hash"]


@pytest.mark.parametrize(
    "broken",
    [{"logsBloom": None}, {"number": "76250"}, {"baseFeePerGas": None, "withdrawalsRoot": "0x"}],
)
def test_malformed_headers_are_chain_data_errors(broken: dict[str, Any]) -> None:
    header = {k: v for k, v in {**HEADER, **broken}.items() if v is not None}
    with pytest.raises(ChainDataError):
        header_hash(header)
    with pytest.raises(ChainDataError):
        parse_bloom("0x1234")
