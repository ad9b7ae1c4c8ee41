"""Measurement 5: EVM withdrawal transactions built and signed per second.

Measured: ``unsigned_transaction`` + ``sign_evm`` (eth-account through eth-keys with coincurve,
then the sender recovered from the signed bytes as the signer does) for ERC-20 transfers at
consecutive nonces, in one process and in two processes at once (the 2-core figure). Baselines
in the same run: the bare libsecp256k1 signature of a 32-byte digest (coincurve, the floor of
any signer), and eth-account on eth-keys' pure-Python backend (what signing costs without
coincurve). No database or node: signing is CPU only.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import coincurve

from chaingate.chains.evm.txbuilder import EvmTransfer, Fees, unsigned_transaction
from chaingate.signer.evm import sign_evm
from chaingate.signer.keystore import hot_key

TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
TO = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


@dataclasses.dataclass
class SignPass:
    name: str
    count: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0


@dataclasses.dataclass
class SigningResult:
    count: int
    passes: list[SignPass]

    def pass_named(self, name: str) -> SignPass:
        return next(p for p in self.passes if p.name == name)


def _transfer(nonce: int) -> EvmTransfer:
    return EvmTransfer(
        chain_id=1,
        nonce=nonce,
        to=TO,
        amount=10**18 + nonce,
        contract=TOKEN,
        gas=65_000,
        fees=Fees(max_fee_per_gas=40 * 10**9, max_priority_fee_per_gas=2 * 10**9),
    )


def sign_many(count: int) -> float:
    """Seconds to build and sign ``count`` transactions (also the worker of the 2-core pass)."""
    key = hot_key(os.urandom(32))
    started = time.perf_counter()
    for nonce in range(count):
        sign_evm(unsigned_transaction(_transfer(nonce)), key)
    return time.perf_counter() - started


def _bare(count: int) -> float:
    key = coincurve.PrivateKey(os.urandom(32))
    digests = [os.urandom(32) for _ in range(count)]
    started = time.perf_counter()
    for digest in digests:
        key.sign_recoverable(digest, hasher=None)
    return time.perf_counter() - started


def _pure_python(count: int) -> float:
    """The same signing in a child whose eth-keys is told to use its pure-Python backend."""
    env = dict(os.environ, ECC_BACKEND_CLASS="eth_keys.backends.native.NativeECCBackend")
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]); from eth_keys.backends import get_backend;"
        "assert type(get_backend()).__name__ == 'NativeECCBackend';"
        "from evm_signing import sign_many; print(sign_many(int(sys.argv[2])))"
    )
    here = str(Path(__file__).resolve().parent)
    out = subprocess.run(
        [sys.executable, "-c", probe, here, str(count)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def run_signing(count: int) -> SigningResult:
    passes = [SignPass("bare secp256k1 sign (coincurve, baseline)", count, _bare(count))]
    passes.append(SignPass("build + sign + recover, 1 process", count, sign_many(count)))
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        started = time.perf_counter()
        pool.map(sign_many, [count, count])
        both = time.perf_counter() - started
    passes.append(SignPass("build + sign + recover, 2 processes", 2 * count, both))
    few = max(50, count // 10)
    passes.append(SignPass("build + sign + recover, pure-Python eth-keys", few, _pure_python(few)))
    return SigningResult(count=count, passes=passes)
