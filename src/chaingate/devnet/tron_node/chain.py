"""The devnet chain: blocks, the transaction pool, signature checks, forks and the solid head.

Everything lives in memory. Each block keeps the ledger as it stood after it, so a fork restores
the state of the new head exactly; transactions of dropped blocks are gone unless sent again.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

from coincurve import PrivateKey, PublicKey

from chaingate.chains.tron.addresses import any_to_raw, raw_from_public_point
from chaingate.chains.tron.proto import (
    block_id_of,
    encode_header_raw,
    encode_raw_data,
    txid_of,
)
from chaingate.devnet.tron_node import costs
from chaingate.devnet.tron_node import ledger as lg

TYPE_URL = "type.googleapis.com/protocol.{}"
WITNESS_KEY = hashlib.sha256(b"chaingate tron devnet witness").digest()
FIRST_TRC10_ID = 1_000_001  # mainnet TRC-10 ids start here


class BroadcastError(Exception):
    """A tx refused at broadcast; ``code`` is java-tron's response code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Tx:
    txid: str
    raw_data: dict[str, Any]  # addresses as 41-hex, as java-tron returns with visible=false
    raw_data_hex: str
    signature: list[str]
    fail: str | None = None  # forced failure mode (devnet control)
    outcome: lg.Outcome | None = None

    @property
    def size(self) -> int:
        return costs.tx_size(bytes.fromhex(self.raw_data_hex), self.signature)

    @property
    def expiration(self) -> int:
        return int(self.raw_data.get("expiration", 0))

    def run(self, params: costs.Params, now: int) -> lg.Run:
        return lg.Run(params, now, self.size, int(self.raw_data.get("fee_limit", 0)))

    @property
    def kind(self) -> str:
        return str(self.raw_data["contract"][0]["type"])

    @property
    def value(self) -> dict[str, Any]:
        return dict(self.raw_data["contract"][0]["parameter"]["value"])


@dataclass
class Block:
    number: int
    block_id: str
    header: dict[str, Any]
    witness_signature: str
    txs: list[Tx]
    state: lg.Ledger = field(repr=False)

    @property
    def timestamp(self) -> int:
        return int(self.header["timestamp"])


def _hex_addresses(raw_data: dict[str, Any]) -> dict[str, Any]:
    """raw_data with every address field in 41-hex (broadcasts may use base58 when visible)."""
    out = dict(raw_data)
    contracts = []
    for contract in raw_data["contract"]:
        value = dict(contract["parameter"]["value"])
        for key in ("owner_address", "to_address", "contract_address"):
            if key in value:
                value[key] = any_to_raw(str(value[key])).hex()
        for key in ("call_value", "call_token_value", "token_id"):
            if not value.get(key):
                value.pop(key, None)  # proto3 JSON leaves zero fields out, as java-tron does
        parameter = {"value": value, "type_url": contract["parameter"]["type_url"]}
        contracts.append({**contract, "parameter": parameter})
    out["contract"] = contracts
    return out


def recover_owner(txid: str, signature_hex: str) -> bytes:
    """21-byte address that produced a 65-byte recoverable signature over ``txid``."""
    sig = bytearray(bytes.fromhex(signature_hex))
    if len(sig) != 65:
        raise ValueError("signature must be 65 bytes")
    if sig[64] >= 27:
        sig[64] -= 27
    public = PublicKey.from_signature_and_message(bytes(sig), bytes.fromhex(txid), hasher=None)
    return raw_from_public_point(public.format(compressed=False)[1:])


def _tx_trie_root(txs: list[Tx]) -> str:
    # java-tron builds a merkle tree over hashes of the signed txs; a devnet block only needs a
    # root that commits to its transactions, so the same pairing over txIDs is used.
    level = [bytes.fromhex(tx.txid) for tx in txs]
    if not level:
        return "00" * 32
    while len(level) > 1:
        pairs = [level[i : i + 2] for i in range(0, len(level), 2)]
        level = [hashlib.sha256(b"".join(p)).digest() if len(p) == 2 else p[0] for p in pairs]
    return level[0].hex()


class Chain:
    def __init__(self, genesis: dict[bytes, int], solidify_lag: int = 19) -> None:
        self.solidify_lag = solidify_lag
        self.pool: list[Tx] = []
        self.fail_next: str | None = None
        self.params = costs.Params()
        self.by_txid: dict[str, tuple[Tx, Block]] = {}
        self._contract_seq = 0
        state = lg.Ledger(trx=dict(genesis))
        self.blocks: list[Block] = []
        self._append_block([], state, parent="00" * 32)

    # --- reads ------------------------------------------------------------------------------
    @property
    def head(self) -> Block:
        return self.blocks[-1]

    @property
    def solid(self) -> Block:
        return self.blocks[max(0, self.head.number - self.solidify_lag)]

    def block(self, number: int, solid_only: bool = False) -> Block | None:
        limit = self.solid.number if solid_only else self.head.number
        return self.blocks[number] if 0 <= number <= limit else None

    def tx(self, txid: str, solid_only: bool = False) -> tuple[Tx, Block] | None:
        found = self.by_txid.get(txid.lower())
        if found is None or (solid_only and found[1].number > self.solid.number):
            return None
        return found

    # --- blocks -----------------------------------------------------------------------------
    def _next_timestamp(self) -> int:
        last_ts = self.blocks[-1].timestamp if self.blocks else 0
        return max(int(time.time() * 1000), last_ts + 1)

    def _append_block(self, txs: list[Tx], state: lg.Ledger, parent: str) -> Block:
        number = len(self.blocks)
        witness = PrivateKey(WITNESS_KEY)
        header = {
            "number": number,
            "txTrieRoot": _tx_trie_root(txs),
            "witness_address": raw_from_public_point(
                witness.public_key.format(compressed=False)[1:]
            ).hex(),
            "parentHash": parent,
            "version": 31,
            "timestamp": self._next_timestamp(),
        }
        if number == 0:
            header["timestamp"] = 0  # java-tron's genesis block carries timestamp 0
        raw = encode_header_raw(header)
        block_id = block_id_of(number, raw)
        sig = witness.sign_recoverable(hashlib.sha256(raw).digest(), hasher=None).hex()
        block = Block(number, block_id, header, sig, txs, state)
        self.blocks.append(block)
        for tx in txs:
            self.by_txid[tx.txid] = (tx, block)
        return block

    def mine(self, count: int = 1) -> list[Block]:
        mined = []
        for _ in range(count):
            state = self.head.state.clone()
            now = self._next_timestamp()
            pool, self.pool = self.pool, []
            txs = [tx for tx in pool if self._execute(state, tx, now)]
            mined.append(self._append_block(txs, state, parent=self.head.block_id))
        return mined

    def _execute(self, state: lg.Ledger, tx: Tx, now: int) -> bool:
        """Run ``tx`` into ``state`` for a block at ``now``; False drops it, as java-tron's
        packer drops a pending tx that expired or no longer validates."""
        if tx.expiration <= now:
            return False
        try:
            fee_limit = int(tx.raw_data.get("fee_limit", 0))
            lg.validate(state, tx.kind, tx.value, self.params, fee_limit)
            tx.outcome = lg.apply(state, tx.kind, tx.value, tx.fail, tx.run(self.params, now))
        except (lg.ContractValidateError, costs.ResourceInsufficient):
            return False
        return True

    def fork(self, depth: int) -> None:
        """Drop the last ``depth`` blocks; the solidified part of the chain never changes."""
        if depth < 1 or self.head.number - depth < self.solid.number:
            raise ValueError("a fork may not reach the solidified block")
        for block in self.blocks[-depth:]:
            for tx in block.txs:
                self.by_txid.pop(tx.txid, None)
        del self.blocks[-depth:]
        self.pool = []

    # --- broadcast --------------------------------------------------------------------------
    def pending_state(self) -> lg.Ledger:
        state = self.head.state.clone()
        now = self._next_timestamp()
        for tx in self.pool:
            self._execute(state, tx, now)
        return state

    def _check_tapos(self, raw: dict[str, Any]) -> None:
        # java-tron keeps the ids of the last 65536 blocks by the low 16 bits of their number;
        # ref_block_bytes names the slot, ref_block_hash must equal bytes 8..16 of that id
        ref_bytes, ref_hash = raw.get("ref_block_bytes", ""), raw.get("ref_block_hash", "")
        for block in reversed(self.blocks[-65536:]):
            if block.block_id[12:16] == ref_bytes:
                if block.block_id[16:32] == ref_hash:
                    return
                break
        raise BroadcastError("TAPOS_ERROR", "Tapos check error.")

    def accept(self, payload: dict[str, Any]) -> Tx:
        """Validate a signed tx as java-tron does and put it in the pool."""
        try:
            raw = _hex_addresses(payload["raw_data"])
            raw_bytes = encode_raw_data(raw)
        except (KeyError, ValueError, TypeError) as exc:
            raise BroadcastError("OTHER_ERROR", f"malformed transaction: {exc}") from exc
        txid = txid_of(raw_bytes)
        if txid in self.by_txid or any(t.txid == txid for t in self.pool):
            raise BroadcastError("DUP_TRANSACTION_ERROR", "dup transaction")
        expiration, head_time = int(raw.get("expiration", 0)), self.head.timestamp
        # The devnet's genesis is dated 0 (as java-tron's): no upper bound before a first block
        latest = head_time + costs.MAXIMUM_TIME_UNTIL_EXPIRATION if self.head.number else expiration
        if not head_time < expiration <= latest:
            # java-tron logs "Transaction expiration, transaction expiration time is %d, but
            # headBlockTime is %d" and answers with the short text only
            raise BroadcastError("TRANSACTION_EXPIRATION_ERROR", "Transaction expired")
        self._check_tapos(raw)
        tx = Tx(txid, raw, raw_bytes.hex(), list(payload.get("signature") or []))
        self._check_signature(tx)
        state = self.pending_state()
        try:
            lg.validate(state, tx.kind, tx.value, self.params, int(raw.get("fee_limit", 0)))
            lg.apply(state, tx.kind, tx.value, None, tx.run(self.params, self._next_timestamp()))
        except lg.ContractValidateError as exc:
            raise BroadcastError(
                "CONTRACT_VALIDATE_ERROR", f"Contract validate error : {exc}"
            ) from exc
        except costs.ResourceInsufficient as exc:
            raise BroadcastError("BANDWITH_ERROR", str(exc)) from exc
        if tx.kind == "TriggerSmartContract" and self.fail_next:
            tx.fail, self.fail_next = self.fail_next, None
        self.pool.append(tx)
        return tx

    def _check_signature(self, tx: Tx) -> None:
        owner = any_to_raw(tx.value["owner_address"])
        if len(tx.signature) != 1:
            raise BroadcastError("SIGERROR", "Validate signature error: miss sig or contract")
        try:
            signer = recover_owner(tx.txid, tx.signature[0])
        except ValueError as exc:
            raise BroadcastError("SIGERROR", f"Validate signature error: {exc}") from exc
        if signer != owner:
            raise BroadcastError(
                "SIGERROR",
                f"Validate signature error: {tx.signature[0]} is signed by {signer.hex()} "
                "but it is not contained of permission.",
            )

    # --- devnet controls --------------------------------------------------------------------
    def _all_states(self) -> list[lg.Ledger]:
        return [b.state for b in self.blocks]

    def fund(self, address: bytes, amount: int) -> None:
        # An allocation as if made at genesis: it survives forks, which keeps tests honest
        # about what a fork drops (only the txs of the dropped blocks).
        for state in self._all_states():
            state.trx[address] = state.trx.get(address, 0) + amount

    def deploy_trc20(self, symbol: str, decimals: int, owner: bytes, supply: int) -> bytes:
        self._contract_seq += 1
        seed = f"trc20:{symbol}:{self._contract_seq}".encode()
        address = bytes([0x41]) + hashlib.sha256(seed).digest()[-20:]
        for state in self._all_states():
            state.trc20[address] = lg.Trc20(address, symbol, decimals, owner, {owner: supply})
            state.trx.setdefault(owner, 0)
        return address

    def issue_trc10(self, name: str, owner: bytes, supply: int) -> int:
        token_id = FIRST_TRC10_ID + len(self.head.state.trc10_names)
        for state in self._all_states():
            state.trc10_names[str(token_id)] = name
            state.trc10.setdefault(owner, {})[str(token_id)] = supply
            state.trx.setdefault(owner, 0)
        return token_id

    def unsigned(self, kind: str, value: dict[str, Any], fee_limit: int = 0) -> dict[str, Any]:
        """An unsigned tx referencing the solid block, as createtransaction returns it."""
        now = int(time.time() * 1000)
        raw: dict[str, Any] = {
            "contract": [
                {"parameter": {"value": value, "type_url": TYPE_URL.format(kind)}, "type": kind}
            ],
            "ref_block_bytes": self.solid.block_id[12:16],
            "ref_block_hash": self.solid.block_id[16:32],
            "expiration": now + 60_000,
            "timestamp": now,
        }
        if fee_limit:
            raw["fee_limit"] = fee_limit
        raw = _hex_addresses(raw)
        raw_bytes = encode_raw_data(raw)
        return {
            "visible": False,
            "txID": txid_of(raw_bytes),
            "raw_data": raw,
            "raw_data_hex": raw_bytes.hex(),
        }

    def unsigned_from(self, tx: dict[str, Any]) -> dict[str, Any]:
        """txID and raw_data_hex of a client-built raw_data (what getsignweight reports)."""
        raw = _hex_addresses(tx["raw_data"])
        raw_bytes = encode_raw_data(raw)
        return {
            "visible": False,
            "txID": txid_of(raw_bytes),
            "raw_data": raw,
            "raw_data_hex": raw_bytes.hex(),
            "signature": list(tx.get("signature") or []),
        }
