"""Coin selection for a batch: few inputs, little change. Pure: no I/O.

Branch-and-bound first (Murch's algorithm, as Bitcoin Core runs it): a depth-first search over
the coins, largest first, for a set whose effective value (amount less the fee of spending it)
lands in ``[target, target + cost_of_change]``. Such a set needs no change output at all; the
excess (at most what a change output would cost to create and later spend) goes to the fee.
When no such set exists within the try budget, the fallback takes coins largest first until
they pay the outputs, the fee and a change output that is not dust.

Only coins that are confirmed, or unconfirmed change of our own (a transaction we signed, so no
third party can replace it from under us), are eligible; the caller filters with ``eligible``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from chaingate.errors import ValidationError

BNB_TRIES = 100_000
_Chain: TypeAlias = tuple[int, "_Chain"] | None


@dataclass(frozen=True, slots=True)
class Coin:
    """One spendable output of the hot wallet (or, later, of a deposit address)."""

    txid: str
    vout: int
    amount: int  # satoshis
    script: bytes  # its scriptPubKey (P2WPKH)
    chain: int  # BIP32 chain of its key: 0 receive, 1 change (internal)
    index: int  # BIP32 index of its key on that chain
    confirmed: bool
    own_change: bool = False  # an output of a transaction we signed


class InsufficientFunds(ValidationError):
    """Raised when the eligible coins cannot pay the outputs and the fee."""


def eligible(coins: Sequence[Coin]) -> list[Coin]:
    return [c for c in coins if c.confirmed or c.own_change]


@dataclass(frozen=True, slots=True)
class Selection:
    coins: tuple[Coin, ...]
    change: bool  # whether a change output is needed


def select_coins(
    coins: Sequence[Coin],
    *,
    target: int,
    input_fee: int,
    change_fee: int,
    change_spend_fee: int,
    min_change: int,
) -> Selection:
    """Coins paying ``target`` (outputs plus the fee of the transaction without inputs and
    without change). ``input_fee``: the fee of one more input; ``change_fee``: of the change
    output; ``change_spend_fee``: of spending that change later; ``min_change``: the least
    change worth creating (the dust limit of the change script)."""
    pool = sorted(
        (c for c in coins if c.amount > input_fee), key=lambda c: (-c.amount, c.txid, c.vout)
    )
    cost_of_change = change_fee + change_spend_fee
    found = _branch_and_bound(pool, target, input_fee, cost_of_change)
    if found is not None:
        return Selection(found, change=False)
    return _largest_first(pool, target, input_fee, change_fee, min_change)


def _branch_and_bound(
    pool: Sequence[Coin], target: int, input_fee: int, cost_of_change: int
) -> tuple[Coin, ...] | None:
    values = [c.amount - input_fee for c in pool]
    remaining = [0] * (len(values) + 1)
    for i in range(len(values) - 1, -1, -1):
        remaining[i] = remaining[i + 1] + values[i]
    if remaining[0] < target:
        return None
    best: _Chain = None
    best_waste = cost_of_change + 1
    # Iterative depth-first search (a wallet may hold more coins than Python's recursion
    # limit); the chosen set is a linked list shared between branches.
    stack: list[tuple[int, int, _Chain]] = [(0, 0, None)]
    tries = 0
    while stack and tries < BNB_TRIES:
        i, total, chosen = stack.pop()
        tries += 1
        if total > target + cost_of_change:
            continue
        if total >= target:
            if total - target < best_waste:
                best, best_waste = chosen, total - target
            continue
        if i >= len(values) or total + remaining[i] < target:
            continue
        # Leaving coin i out and taking an equal coin after it reaches the same sums as
        # taking coin i, which the other branch explores: skip the equal ones.
        j = i + 1
        while j < len(values) and values[j] == values[i]:
            j += 1
        stack.append((j, total, chosen))
        stack.append((i + 1, total + values[i], (i, chosen)))
    if best is None:
        return None
    picked: list[Coin] = []
    node: _Chain = best
    while node is not None:
        picked.append(pool[node[0]])
        node = node[1]
    return tuple(reversed(picked))


def _largest_first(
    pool: Sequence[Coin], target: int, input_fee: int, change_fee: int, min_change: int
) -> Selection:
    picked: list[Coin] = []
    total = 0
    for coin in pool:
        picked.append(coin)
        total += coin.amount - input_fee
        if total >= target + change_fee + min_change:
            return Selection(tuple(picked), change=True)
    if total >= target:
        # Enough for the outputs but not for a change output worth having: the remainder,
        # less than dust plus a change output, goes to the fee.
        return Selection(tuple(picked), change=False)
    raise InsufficientFunds(
        f"the hot wallet's spendable coins ({total} sat after input fees) cannot pay "
        f"{target} sat of outputs and fee"
    )
