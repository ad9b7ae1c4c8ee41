"""Fill litecoind regtest blocks with ~2,000 transactions each, built and serialised here.

No signing is needed, so nothing can go wrong between the wallet's view and ours: the wallet
pays a few coins to a P2WSH output whose witness script is ``OP_TRUE``; a fan-out transaction
splits each such coin into ``per_block`` OP_TRUE outputs; each of those is spent by a
1-input, 2-output transaction (a payment and a second output, like change) whose witness is
just the script. Every txid is computed here and checked against the node's answer.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from chaingate.devnet.bitcoin import sats_to_coins, script_to_node_address
from common import BareRpc

OP_TRUE = b"\x51"
ANYONE_SCRIPT = b"\x00\x20" + hashlib.sha256(OP_TRUE).digest()  # P2WSH of OP_TRUE
COIN_VALUE = 100_000  # sats per fan-out output
PAYMENT = 40_000  # above the devnet's 10,000-sat minimum deposit
SECOND = 50_000
FAN_OUT_FEE = 200_000
SEND_CHUNK = 500  # sendrawtransaction calls per HTTP batch
MATURE_EXTRA_BLOCKS = 20  # more mature coinbases for the wallet (50 coins each)


@dataclass(frozen=True)
class Outpoint:
    txid: str
    vout: int
    value: int


@dataclass(frozen=True)
class FilledBlocks:
    first: int
    last: int
    transactions: int  # including the coinbases
    to_watched: int

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1


def _varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    return b"\xfe" + struct.pack("<I", n)


def _dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def build_tx(inputs: Sequence[Outpoint], outputs: Sequence[tuple[bytes, int]]) -> tuple[str, str]:
    """(txid, raw hex) of a version-2 segwit transaction spending OP_TRUE P2WSH ``inputs``."""
    ins = b"".join(
        bytes.fromhex(o.txid)[::-1] + struct.pack("<I", o.vout) + b"\x00" + b"\xff\xff\xff\xfd"
        for o in inputs
    )
    outs = b"".join(struct.pack("<q", v) + _varint(len(s)) + s for s, v in outputs)
    body = _varint(len(inputs)) + ins + _varint(len(outputs)) + outs
    version, locktime = struct.pack("<i", 2), struct.pack("<I", 0)
    witness = b"".join(b"\x01" + _varint(len(OP_TRUE)) + OP_TRUE for _ in inputs)
    txid = _dsha256(version + body + locktime)[::-1].hex()
    raw = version + b"\x00\x01" + body + witness + locktime
    return txid, raw.hex()


def p2wpkh(program: bytes) -> bytes:
    return b"\x00\x14" + program


class BitcoinFiller:
    def __init__(self, rpc: BareRpc, wallet: str, watched: Sequence[bytes], seed: int = 11):
        self.rpc = rpc
        self.wallet_path = f"/wallet/{wallet}"
        self.watched = watched
        self.rng = random.Random(seed)

    async def _mine(self, n: int) -> None:
        address = await self.rpc.call("getnewaddress", "", "bech32", path=self.wallet_path)
        await self.rpc.call("generatetoaddress", n, address)

    async def _height(self) -> int:
        return int(await self.rpc.call("getblockcount"))

    async def _fund(self, blocks: int, per_block: int) -> list[Outpoint]:
        """One OP_TRUE coin per block to fill, each large enough for its fan-out."""
        await self._mine(MATURE_EXTRA_BLOCKS)
        amount = per_block * COIN_VALUE + FAN_OUT_FEE
        address = script_to_node_address(ANYONE_SCRIPT)
        coins = []
        for _ in range(blocks):
            txid = await self.rpc.call(
                "sendtoaddress", address, sats_to_coins(amount), path=self.wallet_path
            )
            raw = await self.rpc.call("getrawtransaction", txid, True)
            vout = next(
                o["n"] for o in raw["vout"] if o["scriptPubKey"]["hex"] == ANYONE_SCRIPT.hex()
            )
            coins.append(Outpoint(txid, vout, amount))
        await self._mine_until_empty()
        return coins

    async def _fan_out(self, coins: Sequence[Outpoint], per_block: int) -> list[list[Outpoint]]:
        sets, raws = [], []
        for coin in coins:
            outputs = [(ANYONE_SCRIPT, COIN_VALUE)] * per_block
            txid, raw = build_tx([coin], outputs)
            raws.append(raw)
            sets.append([Outpoint(txid, i, COIN_VALUE) for i in range(per_block)])
        await self._send(raws, [s[0].txid for s in sets])
        await self._mine_until_empty()
        return sets

    async def _mine_until_empty(self) -> None:
        while int((await self.rpc.call("getmempoolinfo"))["size"]) > 0:
            await self._mine(1)

    async def _send(self, raws: Sequence[str], txids: Sequence[str]) -> None:
        for lo in range(0, len(raws), SEND_CHUNK):
            answers = await self.rpc.batch(
                [("sendrawtransaction", [raw]) for raw in raws[lo : lo + SEND_CHUNK]]
            )
            if list(answers) != list(txids[lo : lo + SEND_CHUNK]):
                raise RuntimeError("the node computed other txids than the filler")

    def _spend(self, coin: Outpoint) -> tuple[str, str, bool]:
        hit = self.rng.random() < 0.5
        to = self.rng.choice(self.watched) if hit else p2wpkh(self.rng.randbytes(20))
        second = p2wpkh(self.rng.randbytes(20))
        txid, raw = build_tx([coin], [(to, PAYMENT), (second, SECOND)])
        return txid, raw, hit

    async def fill(self, blocks: int, per_block: int) -> FilledBlocks:
        coin_sets = await self._fan_out(await self._fund(blocks, per_block), per_block)
        first = await self._height() + 1
        hits = 0
        for coins in coin_sets:
            spends = [self._spend(c) for c in coins]
            hits += sum(hit for _, _, hit in spends)
            await self._send([raw for _, raw, _ in spends], [txid for txid, _, _ in spends])
            await self._mine(1)
        last = await self._height()
        await self._check(first, last, per_block)
        return FilledBlocks(first, last, (per_block + 1) * (last - first + 1), hits)

    async def _check(self, first: int, last: int, per_block: int) -> None:
        if last < first:
            raise RuntimeError("no block was mined")
        hashes = await self.rpc.batch([("getblockhash", [h]) for h in range(first, last + 1)])
        stats = await self.rpc.batch([("getblockheader", [h, True]) for h in hashes])
        for header in stats:
            if int(header["nTx"]) != per_block + 1:
                raise RuntimeError(f"block {header['height']} holds {header['nTx']} transactions")
