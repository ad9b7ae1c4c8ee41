"""The pure withdrawal rules: state machines, the content hash, approval seals and the quorum."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta, timezone

import pytest

from chaingate.domain.approvals import (
    Act,
    Approval,
    check_quorum,
    parse_seal_key,
    seal,
    seal_approval,
    verify_approval,
    verify_seal,
)
from chaingate.domain.batch_content import BatchContent, BatchOutput, content_hash
from chaingate.domain.withdrawals import (
    WITHDRAWAL_TRANSITIONS,
    BatchStatus,
    WithdrawalStatus,
    check_batch_transition,
    check_withdrawal_transition,
)
from chaingate.errors import InvalidTransitionError, SealKeyMissingError, ValidationError

KEY = b"k" * 32
AT = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
CONTENT = BatchContent.of(
    network="ethereum-devnet",
    chain_id=31337,
    asset="NEXO",
    contract="0x5fbdb2315678afecb367f032d93f642f64180aa3",
    decimals=18,
    outputs=[
        BatchOutput(7, "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", 5 * 10**18),
        BatchOutput(3, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", 10**18),
    ],
    fee_cap=10**16,
)


def test_the_happy_path_and_both_endings_are_allowed_and_nothing_else() -> None:
    path = ["requested", "batched", "approved", "signing", "signed", "broadcast", "confirmed"]
    for old, new in itertools.pairwise(path):
        assert check_withdrawal_transition(old, new) == WithdrawalStatus(new)
    assert check_withdrawal_transition("batched", "requested") is WithdrawalStatus.REQUESTED
    for final in ("confirmed", "failed", "cancelled"):
        assert not WITHDRAWAL_TRANSITIONS[WithdrawalStatus(final)]
        with pytest.raises(InvalidTransitionError):
            check_withdrawal_transition(final, "requested")
    # Skipping the approval, going backwards, staying put and unknown names are all refused.
    for old, new in [
        ("requested", "signing"),
        ("batched", "signed"),
        ("signed", "signing"),
        ("broadcast", "broadcast"),
        ("requested", "paid"),
        ("broadcast", "cancelled"),
    ]:
        with pytest.raises(InvalidTransitionError):
            check_withdrawal_transition(old, new)
    assert check_batch_transition("pending_approval", "approved") is BatchStatus.APPROVED
    with pytest.raises(InvalidTransitionError):
        check_batch_transition("rejected", "approved")
    with pytest.raises(InvalidTransitionError):
        check_batch_transition("signed", "rejected")


def test_the_content_hash_is_stable_and_independent_of_output_order() -> None:
    reordered = dataclasses.replace(CONTENT, outputs=tuple(reversed(CONTENT.outputs)))
    assert content_hash(CONTENT) == content_hash(reordered)
    assert [o.withdrawal_id for o in CONTENT.outputs] == [3, 7]
    assert CONTENT.total == 6 * 10**18
    # A fixed vector: a change of encoding must be a new version, never a silent new hash.
    assert content_hash(CONTENT) == (
        "baa2f11d96b50b7a158e582b161243bb85a6be1c3476d890d6ca3248e3a2dbb3"
    )


@pytest.mark.parametrize(
    "change",
    [
        {"network": "ethereum-mainnet"},
        {"chain_id": 1},
        {"asset": "ETH"},
        {"contract": "0x0000000000000000000000000000000000000001"},
        {"decimals": 6},
        {"fee_cap": 10**16 + 1},
        {"outputs": (BatchOutput(3, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", 10**18),)},
        {
            "outputs": (
                BatchOutput(3, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", 10**18 + 1),
                CONTENT.outputs[1],
            )
        },
        {
            "outputs": (
                BatchOutput(3, "0x90F79bf6EB2c4f870365E785982E1f101E93b906", 10**18),
                CONTENT.outputs[1],
            )
        },
        {
            "outputs": (
                BatchOutput(4, "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC", 10**18),
                CONTENT.outputs[1],
            )
        },
    ],
)
def test_every_covered_field_changes_the_hash(change: dict[str, object]) -> None:
    assert content_hash(dataclasses.replace(CONTENT, **change)) != content_hash(CONTENT)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [
        {"outputs": ()},
        {"fee_cap": 0},
        {"outputs": (BatchOutput(3, "0xab", 0),)},
        {"outputs": (BatchOutput(3, "0xab", 1), BatchOutput(3, "0xcd", 1))},
        {"outputs": (BatchOutput(3, "0xab", True),)},
    ],
)
def test_content_no_batch_may_have_has_no_hash(change: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        content_hash(dataclasses.replace(CONTENT, **change))  # type: ignore[arg-type]


def test_a_seal_verifies_only_for_the_exact_record_and_key() -> None:
    approval = seal_approval(KEY, 9, "ab" * 32, "alice", AT)
    assert verify_approval(KEY, approval)
    # The same instant read back from PostgreSQL in another zone still verifies.
    cet = timezone(timedelta(hours=1))
    assert verify_approval(KEY, dataclasses.replace(approval, approved_at=AT.astimezone(cet)))
    for change in [
        {"batch_id": 10},
        {"content_hash": "cd" * 32},
        {"principal": "mallory"},
        {"approved_at": AT + timedelta(microseconds=1)},
        {"seal": "00" * 32},
    ]:
        assert not verify_approval(KEY, dataclasses.replace(approval, **change))  # type: ignore[arg-type]
    assert not verify_approval(b"x" * 32, approval)
    # A maker's seal is not an approval's.
    made = seal(KEY, Act.MAKE, 9, "ab" * 32, "alice", AT)
    assert made != approval.seal
    assert verify_seal(KEY, Act.MAKE, 9, "ab" * 32, "alice", AT, made)
    with pytest.raises(SealKeyMissingError):
        seal(b"", Act.APPROVE, 9, "ab" * 32, "alice", AT)
    with pytest.raises(ValidationError):
        parse_seal_key("too short")


def test_the_quorum_counts_distinct_valid_non_maker_approvals_of_this_hash() -> None:
    h = "ab" * 32

    def approve(principal: str, *, batch: int = 9, digest: str = h) -> Approval:
        return seal_approval(KEY, batch, digest, principal, AT)

    def quorum(*approvals: Approval) -> tuple[bool, tuple[str, ...]]:
        q = check_quorum(approvals, key=KEY, batch_id=9, content_hash=h, maker="maker", quorum=2)
        return q.met, q.principals

    assert quorum(approve("alice"), approve("bob")) == (True, ("alice", "bob"))
    assert quorum(approve("alice"), approve("alice")) == (False, ("alice",))
    assert quorum(approve("alice"), approve("maker")) == (False, ("alice",))
    assert quorum(approve("alice"), approve("bob", digest="cd" * 32)) == (False, ("alice",))
    assert quorum(approve("alice"), approve("bob", batch=8)) == (False, ("alice",))
    forged = dataclasses.replace(approve("bob"), seal="ff" * 32)
    assert quorum(approve("alice"), forged) == (False, ("alice",))
    q = check_quorum([forged], key=KEY, batch_id=9, content_hash=h, maker="m", quorum=1)
    assert q.refused == (("bob", "seal does not verify"),)
