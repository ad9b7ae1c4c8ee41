"""TRON signing: the raw_data bytes of ``chains/tron/txbuilder.py`` signed with a hot key.

Before anything is signed, the bytes are read back (``check_bytes``, protobuf reader) and must
say exactly the approved output: the hot address as owner, the destination and amount (for a
TRC-20, the batch's contract, no call value and ``transfer(destination, amount)`` as call data),
the plan's reference block, the expiration and a fee_limit within the fee cap, and no field
chaingate does not write. Bytes that say anything else (a builder bug, a tampered builder) are
refused: nothing is signed. The txID is recomputed here as sha256 of the very bytes that are
signed (java-tron does the same and checks the signature over it), never taken from anyone. The signature is a 65-byte
recoverable secp256k1 signature over the txID; before the bytes are stored the owner is read
back from them (protobuf reader) and the signer recovered from the signature, and both must be
the hot address, so a key mix-up or a builder bug can never reach the chain.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from coincurve import PrivateKey, PublicKey

from chaingate.chains.tron import txbuilder as tb
from chaingate.chains.tron.addresses import any_to_raw, raw_from_public_point, to_base58
from chaingate.chains.tron.proto import decode_raw_data, raw_data_json
from chaingate.chains.tron.txbuilder import Reference
from chaingate.domain import Network
from chaingate.domain.batch_content import BatchContent, BatchOutput
from chaingate.domain.signing_plan import TronPlan
from chaingate.errors import ChainDataError, FeeCapError, SignerError, ValidationError
from chaingate.signer.checks import Refused
from chaingate.signer.keystore import HotKey, tron_address
from chaingate.store.signer import SignedRow


@dataclass(frozen=True, slots=True)
class SignedTronTx:
    raw_bytes: bytes  # Transaction.raw as signed; broadcast (and rebroadcast) as is
    txid: str  # sha256(raw_bytes), lowercase hex, no 0x
    signature: str  # 65 bytes hex (r || s || recovery id)
    sender: str  # T-address


def sign_tron(raw_bytes: bytes, key: HotKey) -> SignedTronTx:
    sender = tron_address(key.secret)
    contract = decode_raw_data(raw_bytes)
    if contract is None or to_base58(contract.owner) != sender:
        raise SignerError("the transaction's owner is not the hot address that signs it")
    digest = hashlib.sha256(raw_bytes).digest()
    signature = PrivateKey(key.secret).sign_recoverable(digest, hasher=None)
    public = PublicKey.from_signature_and_message(signature, digest, hasher=None)
    if to_base58(raw_from_public_point(public.format(compressed=False)[1:])) != sender:
        raise SignerError("the signature does not recover to the hot address")
    return SignedTronTx(raw_bytes, digest.hex(), signature.hex(), sender)


def check_bytes(
    raw_bytes: bytes,
    content: BatchContent,
    output: BatchOutput,
    owner: str,
    reference: Reference,
    expiration: int,
) -> None:
    """Refused unless ``raw_bytes`` (a ``Transaction.raw``) say exactly this approved output and
    nothing more. Read with the protobuf reader, compared with the approved content itself, not
    with what the builder was asked for."""
    try:
        raw = raw_data_json(raw_bytes)  # refuses fields and contract types chaingate does not write
        contract = decode_raw_data(raw_bytes)
        to = any_to_raw(output.destination)
        token = None if content.contract is None else any_to_raw(content.contract)
    except (ChainDataError, ValidationError) as exc:
        raise Refused("bytes_mismatch", f"the built bytes cannot be read back: {exc}") from exc
    assert contract is not None  # raw_data_json refused a transaction without one
    said = (contract.kind, contract.to, contract.amount, contract.data)
    if token is None:
        approved: tuple[str, bytes, int, bytes] = ("TransferContract", to, output.amount, b"")
    else:
        data = bytes.fromhex(tb.SELECTOR_TRANSFER) + to[1:].rjust(32, b"\0")
        approved = ("TriggerSmartContract", token, 0, data + output.amount.to_bytes(32, "big"))
    fee_limit = int(raw.get("fee_limit", 0))
    problems = [
        what
        for what, wrong in (
            ("owner", to_base58(contract.owner) != owner),
            ("transfer", said != approved),
            ("reference block", (raw["ref_block_bytes"], raw["ref_block_hash"])
             != (reference.ref_block_bytes, reference.ref_block_hash)),
            ("expiration", raw["expiration"] != expiration),
            ("fee_limit", fee_limit > content.fee_cap or (token is None and fee_limit != 0)),
        )
        if wrong
    ]  # fmt: skip
    if problems:
        raise Refused(
            "bytes_mismatch",
            f"the bytes built for withdrawal {output.withdrawal_id} do not say the approved "
            f"output ({', '.join(problems)} differ): nothing was signed",
        )


class HotWalletShort(SignerError):
    """The hot address's TRX cannot pay what the batch may cost: amounts, fee_limits,
    activation and bandwidth. Nothing is signed (a transaction it cannot pay would fail)."""

    code = "hot_wallet_short"


@dataclass(frozen=True, slots=True)
class SignedTronOutput:
    withdrawal_id: int
    signed: SignedTronTx
    fee_limit: int
    expiration: int  # ms, fixed in the signed bytes
    reference: Reference
    worst_case_fee: int  # sun: fee_limit or activation, plus bandwidth


def trx_needed(content: BatchContent, plan: TronPlan, fee_limits: dict[int, int]) -> int:
    """The most the batch can take from the hot address in TRX (sun)."""
    total = 0
    for output in content.outputs:
        total += _worst_case_fee(content, plan, output.withdrawal_id, fee_limits)
        if content.contract is None:
            total += output.amount
    return total


def _worst_case_fee(
    content: BatchContent, plan: TronPlan, withdrawal_id: int, fee_limits: dict[int, int]
) -> int:
    if content.contract is not None:
        return fee_limits[withdrawal_id] + tb.TRC20_TX_BYTES * plan.bandwidth_price
    if withdrawal_id in plan.inactive:
        return plan.activation_fee
    return tb.TRX_TX_BYTES * plan.bandwidth_price


def sign_tron_batch(
    content: BatchContent,
    plan: TronPlan,
    key: HotKey,
    *,
    now_ms: int,
    expiration_seconds: int,
    margin_percent: int = tb.DEFAULT_ENERGY_MARGIN_PERCENT,
) -> list[SignedTronOutput]:
    """One signed transaction per output, all naming the plan's (solidified) reference block
    and one expiration. Raises FeeCapError (a fee_limit over the cap) or HotWalletShort."""
    reference = Reference(plan.ref_number, plan.ref_block_id, plan.ref_timestamp)
    expiration = tb.expiration_for(now_ms, expiration_seconds)
    fee_limits: dict[int, int] = {}
    if content.contract is not None:
        for output in content.outputs:
            energy = plan.energy.get(output.withdrawal_id)
            if energy is None:
                raise ValidationError(
                    f"the plan has no energy for withdrawal {output.withdrawal_id}"
                )
            fee_limits[output.withdrawal_id] = tb.fee_limit_for(
                energy,
                plan.energy_price,
                content.fee_cap,
                bandwidth_price=plan.bandwidth_price,
                margin_percent=margin_percent,
            )
    elif plan.activation_fee > content.fee_cap and plan.inactive:
        raise FeeCapError(
            f"activating a new account burns {plan.activation_fee} sun, over the fee cap "
            f"{content.fee_cap}"
        )
    needed = trx_needed(content, plan, fee_limits)
    if needed > plan.hot_balance:
        raise HotWalletShort(
            f"{plan.from_address} holds {plan.hot_balance} sun; the batch may need {needed} "
            "(amounts, fee_limits, activations, bandwidth)"
        )
    out = []
    for output in content.outputs:
        tx = tb.TronTransfer(
            owner=plan.from_address,
            to=output.destination,
            amount=output.amount,
            contract=content.contract,
            fee_limit=fee_limits.get(output.withdrawal_id, 0),
            reference=reference,
            timestamp=now_ms,
            expiration=expiration,
        )
        built = tb.build(tx)
        check_bytes(built.raw_bytes, content, output, plan.from_address, reference, expiration)
        signed = sign_tron(built.raw_bytes, key)
        if signed.txid != built.txid:
            raise SignerError("the txID of the signed bytes differs from the built one")
        out.append(
            SignedTronOutput(
                output.withdrawal_id,
                signed,
                tx.fee_limit,
                expiration,
                reference,
                _worst_case_fee(content, plan, output.withdrawal_id, fee_limits),
            )
        )
    return out


def signed_transaction_bytes(signed: SignedTronTx) -> bytes:
    """The whole ``Transaction`` protobuf (raw_data = 1, signature = 2): what is stored and what
    ``/wallet/broadcasthex`` takes, so every (re)broadcast sends exactly these bytes."""
    return _field(1, signed.raw_bytes) + _field(2, bytes.fromhex(signed.signature))


def _field(number: int, value: bytes) -> bytes:
    return _varint((number << 3) | 2) + _varint(len(value)) + value


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | 0x80 if value else byte)
        if not value:
            return bytes(out)


def tron_rows(
    batch_id: int,
    content: BatchContent,
    network: Network,
    plan: TronPlan,
    key: HotKey,
    epoch: int,
) -> list[SignedRow]:
    """The rows the signer records for a TRON batch, in the same database transaction that
    checks its allocator lease: the signed bytes with their reference block and expiration."""
    assert network.hot_address is not None
    outputs = sign_tron_batch(
        content,
        plan,
        key,
        now_ms=int(time.time() * 1000),
        expiration_seconds=network.tx_expiration,
    )
    return [
        SignedRow(
            batch_id=batch_id,
            withdrawal_id=o.withdrawal_id,
            network=network.name,
            from_address=network.hot_address,
            nonce=None,
            raw_tx=signed_transaction_bytes(o.signed).hex(),
            txid=o.signed.txid,
            fee_cap=content.fee_cap,
            max_fee_per_gas=None,
            max_priority_fee_per_gas=None,
            gas_limit=None,
            signer_epoch=epoch,
            expiration_ms=o.expiration,
            ref_block_number=o.reference.number,
            ref_block_id=o.reference.block_id,
            fee_limit=o.fee_limit or None,
        )
        for o in outputs
    ]
