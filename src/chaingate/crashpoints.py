"""Test-only crash points: a process dies by SIGKILL at a named step of the outgoing path.

``CHAINGATE_TEST_CRASH_AT=<point>[,<point>...]`` makes the signer or broadcaster that reaches
one of the named points kill itself with SIGKILL (no ``finally``, no commit, no lease release:
exactly what ``kill -9`` or a power cut at that instant leaves behind). The end-to-end tests
(tests/test_withdrawals_anvil.py, tests/test_tron_withdrawal_crashes.py) run the matrix of points, restart the process without the
variable and check on the chain that nothing was sent twice or skipped.

Never set it in production. It is read when a point is reached, not at import time, and an
unknown point name is refused so a typo cannot silently test nothing.
"""

from __future__ import annotations

import os
import signal

from chaingate.errors import ConfigError

ENV = "CHAINGATE_TEST_CRASH_AT"

# signer: signed in memory, nothing recorded yet (the transaction that would store the bytes,
# allocate the nonces and complete the job is open and dies with the process).
SIGNED_BEFORE_RECORD = "signer_signed_before_record"
# signer: the bytes, the nonces and the job's completion committed; the allocator lease is
# still held (it runs out).
RECORDED_BEFORE_RELEASE = "signer_recorded_before_release"
# broadcaster: the withdrawal is marked signed, the bytes are not sent yet.
RECORDED_BEFORE_BROADCAST = "broadcaster_before_send"
# broadcaster: the node accepted the bytes, nothing of it recorded.
BROADCAST_BEFORE_BOOKKEEPING = "broadcaster_sent_before_bookkeeping"
# tracker: confirmed on chain deep enough, the confirmation not recorded (nor told the ledger).
# TRON: settled on the solidified chain (confirmed, or failed with its burned fee), nothing of
# it recorded.
CONFIRMED_BEFORE_BOOKKEEPING = "tracker_confirmed_before_bookkeeping"

# (the process that reaches it, point), in the order of the outgoing path: the matrix the tests run
MATRIX = (
    ("signer", SIGNED_BEFORE_RECORD),
    ("signer", RECORDED_BEFORE_RELEASE),
    ("broadcaster", RECORDED_BEFORE_BROADCAST),
    ("broadcaster", BROADCAST_BEFORE_BOOKKEEPING),
    ("broadcaster", CONFIRMED_BEFORE_BOOKKEEPING),
)
POINTS = frozenset(point for _, point in MATRIX)


def crash_point(name: str) -> None:
    """Die here, at once, when the test-only variable names this point."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    names = {n.strip() for n in wanted.split(",") if n.strip()}
    unknown = names - POINTS
    if unknown:
        raise ConfigError(f"{ENV} names unknown crash points {sorted(unknown)}")
    if name in names:
        os.kill(os.getpid(), signal.SIGKILL)
