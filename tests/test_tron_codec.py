"""TRON pure logic against recorded mainnet responses and independent reference implementations."""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import base58
import pytest
from bitcoinlib.keys import HDKey
from bitcoinlib.mnemonic import Mnemonic
from tronpy.hdwallet import key_from_seed
from tronpy.keys import PrivateKey
from tronpy.proto import calculate_txid_from_raw_data

from chaingate.chains.tron.addresses import (
    TronAddresses,
    evm_hex_to_base58,
    from_base58,
    hex_to_base58,
    to_base58,
)
from chaingate.chains.tron.codec import decode_block
from chaingate.chains.tron.proto import (
    block_id_of,
    encode_header_raw,
    encode_raw_data,
    txid_of,
)
from chaingate.chains.tron.rpc import check_block
from chaingate.domain import (
    Asset,
    AssetStandard,
    Endpoint,
    Network,
    NetworkKind,
    RejectReason,
)
from chaingate.errors import ChainDataError, InvalidAddressError

DATA = Path(__file__).parent / "data" / "tron"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
MNEMONIC = (
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about"
)


def load(name: str) -> Any:
    return json.loads((DATA / name).read_text())


def network(xpub: str | None = None) -> Network:
    return Network(
        name="tron-mainnet",
        kind=NetworkKind.TRON,
        confirmations=19,
        block_time=3.0,
        poll_interval=3.0,
        endpoints=(Endpoint(name="x", url="http://127.0.0.1:1"),),
        assets=(
            Asset("TRX", 6, AssetStandard.NATIVE),
            Asset("USDT", 6, AssetStandard.TRC20, contract=USDT),
            Asset("BTT", 6, AssetStandard.TRC10, contract="1002000"),
        ),
        xpub=xpub,
    )


def account_xpub() -> tuple[str, bytes]:
    seed = Mnemonic().to_seed(MNEMONIC)
    account = HDKey.from_seed(seed).subkey_for_path("m/44'/195'/0'")
    return account.wif_public(), seed


# --- addresses --------------------------------------------------------------------------------
def test_bip44_child_matches_tronpy_key_from_same_mnemonic() -> None:
    xpub, seed = account_xpub()
    codec = TronAddresses(network(xpub))
    for index in (0, 1, 7):
        private = key_from_seed(seed, f"m/44'/195'/0'/0/{index}")
        expected = PrivateKey(private).public_key.to_base58check_address()
        derived = codec.derive(index)
        assert derived.address == expected
        assert derived.match_key == expected


def test_known_key_vector() -> None:
    key = PrivateKey(bytes.fromhex("11" * 32))
    raw_hex = key.public_key.to_hex_address()
    assert hex_to_base58(raw_hex) == key.public_key.to_base58check_address()


def test_normalize_accepts_base58_and_hex_and_refuses_others() -> None:
    codec = TronAddresses(network())
    assert codec.normalize(USDT) == USDT
    assert codec.normalize("41a614f803b6fd780986a42c78ec9c7f77e6ded13c") == USDT
    with pytest.raises(InvalidAddressError) as bad_sum:
        codec.normalize(USDT[:-1] + ("u" if USDT[-1] != "u" else "v"))
    assert bad_sum.value.other_network is None
    with pytest.raises(InvalidAddressError) as evm:
        codec.normalize("0xdAC17F958D2ee523a2206206994597C13D831ec7")
    assert evm.value.other_network == "evm"
    for btc in (
        "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
        "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    ):
        with pytest.raises(InvalidAddressError) as other:
            codec.normalize(btc)
        assert other.value.other_network == "bitcoin"


# --- protobuf ids -----------------------------------------------------------------------------
def test_base58_encoder_matches_the_base58_package() -> None:
    # to_base58 divides two digits at a time; the base58 package is the reference.
    rng = random.Random(58)
    raws = [b"\x41" + bytes(20), b"\x41" + b"\xff" * 20, b"\x41" + bytes(19) + b"\x01"]
    raws += [b"\x41" + rng.randbytes(20) for _ in range(3_000)]
    for raw in raws:
        check = hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
        assert to_base58(raw) == base58.b58encode(raw + check).decode(), raw.hex()
        assert from_base58(to_base58(raw)) == raw


def test_real_block_ids_recompute() -> None:
    block = load("block_30864544.json")
    tx = block["transactions"][0]
    raw_bytes = encode_raw_data(tx["raw_data"])
    assert raw_bytes.hex() == tx["raw_data_hex"]
    assert txid_of(raw_bytes) == tx["txID"]
    header = block["block_header"]["raw_data"]
    assert block_id_of(header["number"], encode_header_raw(header)) == block["blockID"]


def test_trigger_encoding_matches_tronpy_protobuf() -> None:
    raw = {
        "contract": [
            {
                "parameter": {
                    "value": {
                        "owner_address": "41ea51a212342c3cba529fdf0a0d167a415e6ce11d",
                        "contract_address": "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
                        "data": "a9059cbb" + "00" * 12 + "19" * 20 + f"{5_000_000:064x}",
                    },
                    "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
                },
                "type": "TriggerSmartContract",
            }
        ],
        "ref_block_bytes": "0004",
        "ref_block_hash": "2b05aa50f6485af1",
        "expiration": 1795315243740,
        "timestamp": 1795315183740,
        "fee_limit": 100_000_000,
    }
    assert txid_of(encode_raw_data(raw)) == calculate_txid_from_raw_data(raw)


# --- recorded responses decode ----------------------------------------------------------------
def test_recorded_block_decodes_trx_transfer() -> None:
    block = check_block(load("block_30864544.json"), 30864544)
    to = hex_to_base58("4158c85b7b6a5118beb3b23c14fcb2f3551a81d79a")
    [transfer] = decode_block(network(), block, [], {from_base58(to)})
    assert (transfer.asset, transfer.amount, transfer.position) == ("TRX", 50_000_000, "native")
    assert transfer.txid == "979e0823f455f3b67d65b351052f0265233f422792d31d5dbeb7c24737dd5556"
    assert transfer.reject_reason is None
    assert decode_block(network(), block, [], {b"\x41" + b"\x00" * 20}) == []


def test_tampered_recorded_block_is_refused() -> None:
    block = load("block_30864544.json")
    block["transactions"][0]["raw_data_hex"] = block["transactions"][0]["raw_data_hex"][:-2] + "30"
    with pytest.raises(ChainDataError):
        check_block(block, 30864544)
    with pytest.raises(ChainDataError):
        check_block(load("block_30864544.json"), 30864545)


def _call_body(txid: str, contract_ret: str, data: str = "") -> dict[str, Any]:
    # The recorded infos come without their tx bodies: a minimal TriggerSmartContract body
    # (txID from the info, its own raw bytes) stands in so the decoder sees the pair. The txID
    # check is rpc.check_block's, tested on the recorded block; decode_block reads the bytes.
    value = {
        "owner_address": "41e4b8075df69297bc24cc4bbaf48cd17206e1f62c",
        "contract_address": "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
        "data": data,
    }
    raw_data = {
        "contract": [
            {
                "type": "TriggerSmartContract",
                "parameter": {
                    "value": value,
                    "type_url": "type.googleapis.com/protocol.TriggerSmartContract",
                },
            }
        ]
    }
    return {
        "txID": txid,
        "ret": [{"contractRet": contract_ret}],
        "raw_data_hex": encode_raw_data(raw_data).hex(),
        "raw_data": raw_data,
    }


def _block(number: int, txs: list[dict[str, Any]]) -> Any:
    return {
        "blockID": f"{number:016x}" + "ab" * 24,
        "block_header": {"raw_data": {"number": number, "parentHash": "cd" * 32}},
        "transactions": txs,
    }


def test_recorded_usdt_log_decodes_listed_transfer() -> None:
    infos = load("txinfo_block_30864600.json")
    txid = infos[1]["id"]
    to = evm_hex_to_base58("0000000000000000000000000d0707963952f2fba59dd06f2b425ace40b492fe")
    block = _block(30864600, [_call_body(txid, "SUCCESS")])
    [transfer] = decode_block(network(), block, [infos[1]], {from_base58(to)})
    assert transfer.asset == "USDT" and transfer.contract == USDT
    assert transfer.amount == 532_079_999  # 532.079999 USDT, 6 decimals
    assert transfer.position == "log:0" and transfer.reject_reason is None
    # the same log seen by a registry that lists another USDT contract is a look-alike
    other = network()
    other = Network(
        **{
            **{f: getattr(other, f) for f in other.__slots__},
            "assets": (
                other.assets[0],
                Asset("USDT", 6, AssetStandard.TRC20, contract="TNotTheRealUsdt"),
            ),
        }
    )
    [lookalike] = decode_block(other, block, [infos[1]], {from_base58(to)})
    assert lookalike.asset is None and lookalike.reject_reason is RejectReason.UNLISTED_TOKEN


def test_recorded_out_of_energy_is_never_credited() -> None:
    info = load("txinfo_e63a324a_out_of_energy.json")
    to_word = "00" * 12 + "0d0707963952f2fba59dd06f2b425ace40b492fe"
    to = evm_hex_to_base58(to_word)
    data = "a9059cbb" + to_word + f"{1_000_000:064x}"
    block = _block(66860010, [_call_body(info["id"], "OUT_OF_ENERGY", data)])
    [transfer] = decode_block(network(), block, [info], {from_base58(to)})
    assert transfer.reject_reason is RejectReason.FAILED_TX
    assert (transfer.position, transfer.amount, transfer.asset) == ("call", 1_000_000, "USDT")


def test_info_of_a_foreign_tx_is_refused() -> None:
    infos = load("txinfo_block_30864600.json")
    block = _block(30864600, [_call_body("ff" * 32, "SUCCESS")])
    with pytest.raises(ChainDataError):
        decode_block(network(), block, infos, set())


def test_rejected_internal_transactions_are_ignored() -> None:
    txid = hashlib.sha256(b"x").hexdigest()
    ours = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
    ours_hex = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
    info = {
        "id": txid,
        "blockNumber": 5,
        "receipt": {"result": "SUCCESS"},
        "internal_transactions": [
            {"rejected": True, "transferTo_address": ours_hex, "callValueInfo": [{"callValue": 9}]},
            {
                "transferTo_address": "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
                "callValueInfo": [{"callValue": 7}],
            },
        ],
    }
    [transfer] = decode_block(
        network(), _block(5, [_call_body(txid, "SUCCESS")]), [info], {from_base58(ours)}
    )
    assert (transfer.amount, transfer.position, transfer.asset) == (7, "trace:1", "TRX")


def test_amounts_and_recipients_come_from_the_bytes_not_the_json() -> None:
    block = load("block_30864544.json")
    tx = block["transactions"][0]
    to = hex_to_base58(tx["raw_data"]["contract"][0]["parameter"]["value"]["to_address"])
    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
    value["amount"] = 10**15  # the JSON rendering lies; the hashed bytes do not
    value["to_address"] = "41" + "22" * 20
    [transfer] = decode_block(network(), check_block(block, 30864544), [], {from_base58(to)})
    assert (transfer.to, transfer.amount) == (to, 50_000_000)


def test_a_missing_contract_ret_is_no_success() -> None:
    block = load("block_30864544.json")
    tx = block["transactions"][0]
    to = hex_to_base58(tx["raw_data"]["contract"][0]["parameter"]["value"]["to_address"])
    del tx["ret"]
    [transfer] = decode_block(network(), check_block(block, 30864544), [], {from_base58(to)})
    assert transfer.reject_reason is RejectReason.FAILED_TX


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b["block_header"]["raw_data"].update(timestamp=1),  # header no longer hashes
        lambda b: b["transactions"][0].update(raw_data_hex="0a02"),  # txID no longer hashes
        lambda b: b["block_header"]["raw_data"].update(parentHash=None),
        lambda b: b.update(transactions="garbage"),
        lambda b: b["transactions"][0].update(ret="garbage"),
    ],
)
def test_malformed_or_doctored_blocks_are_chain_data_errors(edit: Any) -> None:
    block = load("block_30864544.json")
    edit(block)
    with pytest.raises(ChainDataError):
        check_block(block, 30864544)


def test_truncated_protobuf_is_a_chain_data_error() -> None:
    from chaingate.chains.tron.proto import decode_raw_data

    raw = bytes.fromhex(load("block_30864544.json")["transactions"][0]["raw_data_hex"])
    for cut in (1, 5, len(raw) // 2, len(raw) - 1):
        with pytest.raises(ChainDataError):
            decode_raw_data(raw[:cut])
