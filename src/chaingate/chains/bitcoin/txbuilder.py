"""Bitcoin withdrawal transactions: one transaction per batch (SPEC section 7). Pure: no I/O.

A batch becomes ONE transaction: every output of the batch, in withdrawal order, then change
back to a fresh address of the hot wallet's internal chain. Inputs are the hot wallet's P2WPKH
coins (``coinselect.py`` picks them). The fee is the fee rate times the virtual size of the
transaction as it will be signed (a P2WPKH witness is counted at its largest, a 72-byte
signature), so the signed transaction never pays less than the rate that was asked for. Every
input signals BIP125 replaceability (nSequence 0xfffffffd) so a stuck batch can be bumped.

Amounts are integers in satoshis; fee rates are integers in satoshis per 1000 virtual bytes
(what ``estimatesmartfee`` reports, in BTC/kvB, times 10^8), so no float touches money.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from chaingate.chains.bitcoin.coinselect import Coin, InsufficientFunds, eligible, select_coins
from chaingate.errors import ValidationError

RBF_SEQUENCE = 0xFFFFFFFD  # < 0xfffffffe: replaceable (BIP125), and no relative lock-time
TX_VERSION = 2
SIGHASH_ALL = 1
# Weight of one P2WPKH input: outpoint 36 + empty scriptSig 1 + sequence 4 (x4), plus the
# witness: item count 1, signature push 1+72 (DER low-S at most 71, plus the sighash byte),
# public key push 1+33.
P2WPKH_INPUT_WEIGHT = 41 * 4 + 1 + 73 + 34
# version 4 + locktime 4 (x4), segwit marker and flag 2
TX_OVERHEAD_WEIGHT = 8 * 4 + 2
P2WPKH_SCRIPT_LEN = 22
# Bitcoin Core's default incremental relay fee (sat/kvB), used when the node does not say its
# own (``getnetworkinfo`` ``incrementalfee``): a replacement pays at least this much more per
# vbyte of its own size than the transaction it replaces (BIP125 rule 4).
DEFAULT_INCREMENTAL_RELAY_FEE = 1_000


def dsha256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def varint(n: int) -> bytes:
    if n < 0xFD:
        return bytes([n])
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def dust_threshold(script: bytes) -> int:
    """Bitcoin Core's dust limit at the default dust relay fee (3 sat/vB): an output is dust
    when spending it would cost more than a third of its value. 546 for P2PKH, 540 for P2SH,
    294 for P2WPKH, 330 for P2WSH and P2TR."""
    size = 8 + len(varint(len(script))) + len(script)
    witness = len(script) >= 4 and (script[0] == 0 or 0x51 <= script[0] <= 0x60)
    # spending input: 32+4+1+4 bytes plus a 107-byte signature and key, counted at a quarter
    # inside the witness (67 vB), in full in a scriptSig (148 B)
    size += 67 if witness else 148
    return size * 3


@dataclass(frozen=True, slots=True)
class TxIn:
    txid: str  # display order (as nodes show it)
    vout: int
    sequence: int = RBF_SEQUENCE

    def outpoint(self) -> bytes:
        return bytes.fromhex(self.txid)[::-1] + self.vout.to_bytes(4, "little")


@dataclass(frozen=True, slots=True)
class TxOut:
    amount: int  # satoshis
    script: bytes  # scriptPubKey

    def serialize(self) -> bytes:
        return self.amount.to_bytes(8, "little") + varint(len(self.script)) + self.script


@dataclass(frozen=True, slots=True)
class UnsignedTx:
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]
    version: int = TX_VERSION
    locktime: int = 0

    def serialize(self, witnesses: Sequence[Sequence[bytes]] | None = None) -> bytes:
        """The transaction's bytes; with ``witnesses`` (one stack per input) in BIP144 form."""
        parts = [self.version.to_bytes(4, "little")]
        if witnesses is not None:
            parts.append(b"\x00\x01")
        parts.append(varint(len(self.inputs)))
        for txin in self.inputs:
            parts += [txin.outpoint(), b"\x00", txin.sequence.to_bytes(4, "little")]
        parts.append(varint(len(self.outputs)))
        parts += [o.serialize() for o in self.outputs]
        if witnesses is not None:
            for stack in witnesses:
                parts.append(varint(len(stack)))
                parts += [varint(len(item)) + item for item in stack]
        parts.append(self.locktime.to_bytes(4, "little"))
        return b"".join(parts)

    def txid(self) -> str:
        return dsha256(self.serialize())[::-1].hex()


def estimate_vsize(n_inputs: int, output_scripts: Sequence[bytes]) -> int:
    """Virtual size of a transaction with ``n_inputs`` P2WPKH inputs once signed (at most)."""
    base = len(varint(n_inputs)) + len(varint(len(output_scripts)))
    base += sum(8 + len(varint(len(s))) + len(s) for s in output_scripts)
    weight = TX_OVERHEAD_WEIGHT + base * 4 + n_inputs * P2WPKH_INPUT_WEIGHT
    return (weight + 3) // 4


def fee_for(vsize: int, fee_rate: int) -> int:
    """Satoshis for ``vsize`` vbytes at ``fee_rate`` sat/kvB, rounded up."""
    return (vsize * fee_rate + 999) // 1000


class SighashCache:
    """BIP143 (segwit v0) signature hashes of one transaction, SIGHASH_ALL. The three
    transaction-wide hashes are computed once, so signing n inputs costs O(n + outputs)."""

    def __init__(self, tx: UnsignedTx) -> None:
        self.tx = tx
        self.hash_prevouts = dsha256(b"".join(i.outpoint() for i in tx.inputs))
        self.hash_sequence = dsha256(b"".join(i.sequence.to_bytes(4, "little") for i in tx.inputs))
        self.hash_outputs = dsha256(b"".join(o.serialize() for o in tx.outputs))

    def sighash(self, index: int, script_code: bytes, amount: int) -> bytes:
        txin = self.tx.inputs[index]
        preimage = b"".join(
            (
                self.tx.version.to_bytes(4, "little"),
                self.hash_prevouts,
                self.hash_sequence,
                txin.outpoint(),
                varint(len(script_code)) + script_code,
                amount.to_bytes(8, "little"),
                txin.sequence.to_bytes(4, "little"),
                self.hash_outputs,
                self.tx.locktime.to_bytes(4, "little"),
                SIGHASH_ALL.to_bytes(4, "little"),
            )
        )
        return dsha256(preimage)


def p2wpkh_script_code(pubkey_hash: bytes) -> bytes:
    """BIP143 scriptCode of a P2WPKH input: the P2PKH script of its key hash."""
    return b"\x76\xa9\x14" + pubkey_hash + b"\x88\xac"


def check_outputs(outputs: Sequence[TxOut]) -> None:
    for n, out in enumerate(outputs):
        if out.amount < dust_threshold(out.script):
            raise ValidationError(
                f"output {n} of {out.amount} sat is below the dust limit "
                f"{dust_threshold(out.script)} of its script type"
            )


@dataclass(frozen=True, slots=True)
class BatchTx:
    """A batch's transaction before signing: the coins it spends (in input order), its
    outputs (the batch's, then change if any), the fee it pays and the size it was paid for."""

    tx: UnsignedTx
    coins: tuple[Coin, ...]
    fee: int
    vsize: int
    fee_rate: int  # sat/kvB
    change_index: int | None  # position of the change output, None without change

    @property
    def change(self) -> TxOut | None:
        return None if self.change_index is None else self.tx.outputs[self.change_index]


def build_batch(
    payments: Sequence[TxOut],
    coins: Sequence[Coin],
    *,
    change_script: bytes,
    fee_rate: int,
    fee_cap: int,
    required: Sequence[Coin] = (),
) -> BatchTx:
    """ONE transaction paying every output of ``payments`` (in order), funded from ``coins``,
    with change (if worth having) to ``change_script`` last. ``required`` coins are spent
    whatever the selection says (an RBF replacement must spend its original's inputs).
    ValidationError when an output is dust, InsufficientFunds when the coins do not reach, and
    FeeCapExceeded when the fee would pass the approved cap."""
    if not payments:
        raise ValidationError("a batch transaction needs at least one output")
    check_outputs(payments)
    scripts = [p.script for p in payments]
    n_required = len(required)
    # +2 vB: the input count's varint grows to 3 bytes past 252 inputs
    base_fee = fee_for(estimate_vsize(n_required, scripts) + 2, fee_rate)
    target = sum(p.amount for p in payments) + base_fee - sum(c.amount for c in required)
    input_fee = fee_for((P2WPKH_INPUT_WEIGHT + 3) // 4, fee_rate)
    change_fee = fee_for(8 + 1 + len(change_script), fee_rate)
    spend_fee = fee_for((P2WPKH_INPUT_WEIGHT + 3) // 4, fee_rate)
    taken = {(c.txid, c.vout) for c in required}
    extra: tuple[Coin, ...] = ()
    change_wanted = True
    if target > 0:
        pool = [c for c in eligible(coins) if (c.txid, c.vout) not in taken]
        selection = select_coins(
            pool,
            target=target,
            input_fee=input_fee,
            change_fee=change_fee,
            change_spend_fee=spend_fee,
            min_change=dust_threshold(change_script),
        )
        extra, change_wanted = selection.coins, selection.change
    spent = tuple(required) + extra
    return _assemble(payments, spent, change_script, fee_rate, fee_cap, change_wanted)


def _assemble(
    payments: Sequence[TxOut],
    spent: tuple[Coin, ...],
    change_script: bytes,
    fee_rate: int,
    fee_cap: int,
    change_wanted: bool,
) -> BatchTx:
    scripts = [p.script for p in payments]
    total_in = sum(c.amount for c in spent)
    total_out = sum(p.amount for p in payments)
    inputs = tuple(TxIn(c.txid, c.vout) for c in spent)
    outputs = tuple(payments)
    change_index: int | None = None
    vsize = estimate_vsize(len(spent), scripts)
    if change_wanted:
        with_change = estimate_vsize(len(spent), [*scripts, change_script])
        change = total_in - total_out - fee_for(with_change, fee_rate)
        if change >= dust_threshold(change_script):
            outputs = (*outputs, TxOut(change, change_script))
            change_index = len(outputs) - 1
            vsize = with_change
    fee = total_in - sum(o.amount for o in outputs)
    if fee < fee_for(vsize, fee_rate):
        raise InsufficientFunds(
            f"inputs of {total_in} sat do not pay {total_out} sat and the fee at {fee_rate} sat/kvB"
        )
    if fee > fee_cap:
        raise FeeCapExceeded(fee, fee_cap)
    tx = UnsignedTx(inputs=inputs, outputs=outputs)
    return BatchTx(tx, spent, fee, vsize, fee_rate, change_index)


class FeeCapExceeded(ValidationError):
    """Raised when a transaction would pay more fee than the batch's approved cap."""

    def __init__(self, fee: int, cap: int) -> None:
        super().__init__(f"fee {fee} sat exceeds the approved cap {cap} sat")
        self.fee = fee
        self.cap = cap


def replacement(
    original: BatchTx,
    coins: Sequence[Coin],
    *,
    change_script: bytes,
    fee_rate: int,
    fee_cap: int,
    incremental_rate: int = DEFAULT_INCREMENTAL_RELAY_FEE,
    parents: tuple[int, int] = (0, 0),
) -> BatchTx:
    """A BIP125 replacement of ``original``: the same payments, every original input (plus
    more if needed), and a fee that beats the original's in rate and in absolute amount by at
    least the incremental relay fee of the replacement's own size.

    ``parents``: (fee, vsize) of our own unconfirmed transactions whose change ``original``
    spends. Miners take a transaction with its unconfirmed parents, by their joint fee rate, so
    the replacement then pays for the package: parents and replacement together reach
    ``fee_rate``, and beat the package's present rate by the incremental relay fee (child pays
    for parent: the parents are bumped without being replaced)."""
    n_payments = len(original.tx.outputs) - (0 if original.change_index is None else 1)
    payments = original.tx.outputs[:n_payments]
    parent_fee, parent_vsize = parents
    package_rate = (parent_fee + original.fee) * 1000 // (parent_vsize + original.vsize)
    target = max(fee_rate, package_rate + incremental_rate)
    rate = max(target, original.fee_rate + incremental_rate)
    while True:
        bumped = build_batch(
            payments,
            coins,
            change_script=change_script,
            fee_rate=rate,
            fee_cap=fee_cap,
            required=original.coins,
        )
        package_short = fee_for(parent_vsize + bumped.vsize, target) - parent_fee - bumped.fee
        if bumped.fee >= original.fee + fee_for(bumped.vsize, incremental_rate) and (
            package_short <= 0
        ):
            return bumped
        rate = max(rate + incremental_rate, (bumped.fee + package_short) * 1000 // bumped.vsize + 1)
