"""One small driver per chain behind one Protocol, so one deposit suite runs on all three.

A driver issues nothing itself (the gateway's API does); it pays, mines, reorganises and fails
transactions on the session's devnet node, and builds the devnet network the gateway watches.
Every driver's network credits after 2 confirmations (TRON without solidity: that rule has its
own test in test_deposits_tron.py) and starts above whatever earlier tests left behind.
"""

from __future__ import annotations

from typing import Protocol

from chaingate.domain import Network

CONFIRMATIONS = 2


class ChainDriver(Protocol):
    kind: str
    native: str  # the asset ``pay`` sends
    token: str | None  # the listed token ``pay_token`` sends (None: the chain has none)
    dust: int  # a native amount below the minimum deposit

    async def network(self) -> Network:
        """The devnet network to watch, starting at the next block."""

    async def pay(self, address: str, amount: int) -> str:
        """Pay ``amount`` of the native coin to ``address`` in a new block (1 confirmation)."""

    async def pay_token(self, address: str, amount: int) -> str:
        """Pay the listed token, like ``pay``."""

    async def pay_unlisted(self, address: str, amount: int) -> tuple[str, str]:
        """Pay a look-alike token (same symbol, another contract) like ``pay``; (txid, contract)."""

    async def pay_failed(self, address: str, amount: int) -> str:
        """A transaction paying ``address`` the listed token that fails on chain, in a block."""

    async def mine(self, blocks: int) -> None:
        """Mine ``blocks`` empty blocks."""

    async def mark(self) -> object:
        """Remember the current tip, for a later ``reorg``."""

    async def reorg(self, mark: object, *, remine: bool) -> None:
        """Replace every block above ``mark`` by a longer branch. ``remine``: the transactions of
        the dropped blocks are mined again in the new branch (at other heights); otherwise they
        are gone for good."""


__all__ = ["CONFIRMATIONS", "ChainDriver"]
