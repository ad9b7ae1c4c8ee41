"""Measurement 6: a 1,000-output Bitcoin withdrawal batch built and signed.

Measured: ``build_batch`` (coin selection over a 200-coin hot wallet, change, fee from the
virtual size) and ``sign_p2wpkh`` (BIP143 over coincurve, each signature verified) of ONE
transaction paying 1,000 outputs of mixed script types, in one process and in two processes at
once (the 2-core figure). Reported beside the transaction's size, virtual size and fee. Baseline
in the same run: bitcoinlib's ``Transaction.sign`` of the same transaction size (the project's
other option) building and signing a transaction of as many outputs and 10 inputs. No database
or node: CPU only.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import random
import time

from coincurve import PrivateKey

from chaingate.chains.bitcoin.addresses import hash160, p2wpkh_script
from chaingate.chains.bitcoin.coinselect import Coin
from chaingate.chains.bitcoin.txbuilder import BatchTx, TxOut, build_batch
from chaingate.signer.bitcoin import SignedBitcoinTx, sign_p2wpkh

FEE_RATE = 10_000  # sat/kvB
SCRIPT_PREFIXES = ("0014", "5120", "a914", "76a914", "0020")


@dataclasses.dataclass
class BatchResult:
    outputs: int
    inputs: int
    size: int
    vsize: int
    fee: int
    seconds_one: float  # build + sign, 1 process (median of 3)
    seconds_two: float  # two batches at once in 2 processes (wall time)
    bitcoinlib_outputs: int
    bitcoinlib_seconds: float | None


def _payments(count: int, rng: random.Random) -> list[TxOut]:
    out = []
    for n in range(count):
        prefix = SCRIPT_PREFIXES[n % len(SCRIPT_PREFIXES)]
        body = {"0014": 20, "5120": 32, "a914": 20, "76a914": 20, "0020": 32}[prefix]
        suffix = {"a914": "87", "76a914": "88ac"}.get(prefix, "")
        script = bytes.fromhex(prefix + rng.randbytes(body).hex() + suffix)
        out.append(TxOut(10_000 + n, script))
    return out


def _wallet(rng: random.Random) -> tuple[list[Coin], dict[int, bytes]]:
    secrets = {i: rng.randbytes(32) for i in range(200)}
    coins = [
        Coin(
            txid=rng.randbytes(32).hex(),
            vout=0,
            amount=100_000 + rng.randrange(100_000),
            script=p2wpkh_script(hash160(PrivateKey(secrets[i]).public_key.format())),
            chain=0,
            index=i,
            confirmed=True,
        )
        for i in range(200)
    ]
    return coins, secrets


def build_and_sign(count: int) -> tuple[float, BatchTx, SignedBitcoinTx]:
    rng = random.Random(count)
    payments = _payments(count, rng)
    coins, secrets = _wallet(rng)
    started = time.perf_counter()
    batch = build_batch(
        payments,
        coins,
        change_script=bytes.fromhex("0014" + "77" * 20),
        fee_rate=FEE_RATE,
        fee_cap=10**8,
    )
    signed = sign_p2wpkh(batch, lambda chain, index: secrets[index])
    return time.perf_counter() - started, batch, signed


def _seconds(count: int) -> float:
    return build_and_sign(count)[0]


def _bitcoinlib(outputs: int) -> float:
    """bitcoinlib building a transaction of 10 P2WPKH inputs and ``outputs`` outputs and
    signing it."""
    from bitcoinlib.keys import Key
    from bitcoinlib.transactions import Transaction

    rng = random.Random(7)
    keys = [Key(rng.randbytes(32).hex(), network="testnet") for _ in range(10)]
    started = time.perf_counter()
    tx = Transaction(network="testnet", witness_type="segwit")
    for key in keys:
        tx.add_input(rng.randbytes(32), 0, keys=key, value=200_000, witness_type="segwit")
    for _ in range(outputs):
        tx.add_output(1_000, address=keys[0].address(encoding="bech32"))
    for n, key in enumerate(keys):
        tx.sign(key, n)
    return time.perf_counter() - started


def run_batch(count: int = 1_000, bitcoinlib_outputs: int = 1_000) -> BatchResult:
    one, batch, signed = min((build_and_sign(count) for _ in range(3)), key=lambda r: r[0])
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.map(_seconds, [10, 10])  # warm the workers' imports
        started = time.perf_counter()
        pool.map(_seconds, [count, count])
        both = time.perf_counter() - started
    try:
        lib: float | None = _bitcoinlib(bitcoinlib_outputs)
    except Exception:  # bitcoinlib's API drifts between versions; the baseline is optional
        lib = None
    return BatchResult(
        outputs=count,
        inputs=len(batch.coins),
        size=len(signed.raw),
        vsize=signed.vsize,
        fee=batch.fee,
        seconds_one=one,
        seconds_two=both,
        bitcoinlib_outputs=bitcoinlib_outputs,
        bitcoinlib_seconds=lib,
    )


if __name__ == "__main__":
    print(run_batch())
