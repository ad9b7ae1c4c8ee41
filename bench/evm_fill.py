"""Fill an anvil with full blocks fast: automine off, one batch of transactions per block, mine.

Transactions come from anvil's unlocked default accounts (``eth_sendTransaction``: anvil signs
them, so filling costs no Python-side signing) with explicit nonces, gas and fees, so anvil
estimates nothing. Half the transfers are DevToken ``transfer`` calls (a Transfer log each),
half plain ETH; about ``watched_share`` of them pay one of the watched addresses, the rest
pay addresses nobody watches.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from common import BareRpc

ETH_GAS = 21_000
TOKEN_GAS = 90_000  # a transfer to a fresh holder costs ~52k; fixed so nothing is estimated
MAX_FEE = hex(50 * 10**9)
TIP = hex(10**9)
TOKEN_SENDERS = 4  # accounts 0..3 send tokens (account 0 holds the supply and hands some out)
ETH_AMOUNT_MIN = 10**15  # 0.001 ETH: the devnet's minimum deposit, so deposits are credited
TOKEN_AMOUNT = 10**18  # 1 NEXO: the devnet's minimum deposit
SELECTOR_TRANSFER = "a9059cbb"
RECIPIENTS = 2_000  # distinct watched recipients, and as many unwatched ones


@dataclass(frozen=True)
class FilledRange:
    first: int
    last: int
    transactions: int
    to_watched: int  # transfers that pay a watched address

    @property
    def blocks(self) -> int:
        return self.last - self.first + 1


def token_transfer_input(to: str, amount: int) -> str:
    return "0x" + SELECTOR_TRANSFER + to[2:].lower().rjust(64, "0") + hex(amount)[2:].rjust(64, "0")


def fresh_address(rng: random.Random) -> str:
    return "0x" + rng.randbytes(20).hex()


class Filler:
    def __init__(
        self,
        rpc: BareRpc,
        token: str,
        watched: Sequence[str],
        seed: int = 7,
        recipients: int = RECIPIENTS,
    ) -> None:
        self.rpc = rpc
        self.token = token.lower()
        self.rng = random.Random(seed)
        # anvil clones its state for every mined block, so each block costs time in proportion
        # to the number of accounts: recipients come from fixed pools to keep the state small.
        self.watched = list(watched[:recipients])
        self.unwatched = [fresh_address(self.rng) for _ in range(recipients)]
        self.accounts: list[str] = []
        self.nonces: dict[str, int] = {}

    async def prepare(self) -> None:
        """Learn the accounts and nonces; give accounts 1..3 tokens (automine still on)."""
        self.accounts = [a.lower() for a in await self.rpc.call("eth_accounts")]
        if len(self.accounts) < TOKEN_SENDERS + 2:
            raise RuntimeError(f"anvil offers only {len(self.accounts)} accounts")
        await self._load_nonces()
        holder = self.accounts[0]
        share = 10**9 * 10**18 // (TOKEN_SENDERS * 2)
        calls = [
            self._tx(holder, self.token, 0, token_transfer_input(account, share), TOKEN_GAS)
            for account in self.accounts[1:TOKEN_SENDERS]
        ]
        await self.rpc.batch(calls)
        await self.rpc.call("evm_setAutomine", False)
        await self.rpc.call("evm_mine")

    async def _load_nonces(self) -> None:
        counts = await self.rpc.batch(
            [("eth_getTransactionCount", [a, "pending"]) for a in self.accounts]
        )
        self.nonces = {a: int(c, 16) for a, c in zip(self.accounts, counts, strict=True)}

    def _tx(
        self, sender: str, to: str, value: int, data: str, gas: int
    ) -> tuple[str, list[object]]:
        nonce = self.nonces[sender]
        self.nonces[sender] = nonce + 1
        tx = {
            "from": sender,
            "to": to,
            "value": hex(value),
            "gas": hex(gas),
            "maxFeePerGas": MAX_FEE,
            "maxPriorityFeePerGas": TIP,
            "nonce": hex(nonce),
            "input": data,
        }
        return ("eth_sendTransaction", [tx])

    def _recipient(self, watched_share: float) -> tuple[str, bool]:
        if self.rng.random() < watched_share:
            return self.rng.choice(self.watched), True
        return self.rng.choice(self.unwatched), False

    def _block_calls(
        self, per_block: int, watched_share: float
    ) -> tuple[list[tuple[str, list[object]]], int]:
        calls, hits = [], 0
        token_senders = self.accounts[:TOKEN_SENDERS]
        eth_senders = self.accounts[TOKEN_SENDERS:]
        for i in range(per_block):
            to, hit = self._recipient(watched_share)
            hits += hit
            if i % 2 == 0:
                sender = token_senders[(i // 2) % len(token_senders)]
                data = token_transfer_input(to, TOKEN_AMOUNT)
                calls.append(self._tx(sender, self.token, 0, data, TOKEN_GAS))
            else:
                sender = eth_senders[(i // 2) % len(eth_senders)]
                value = ETH_AMOUNT_MIN * self.rng.randint(1, 9)
                calls.append(self._tx(sender, to, value, "0x", ETH_GAS))
        return calls, hits

    async def fill(self, blocks: int, per_block: int, watched_share: float) -> FilledRange:
        first = int(await self.rpc.call("eth_blockNumber"), 16) + 1
        sent = hits = 0
        for _ in range(blocks):
            calls, block_hits = self._block_calls(per_block, watched_share)
            await self.rpc.batch(calls)
            await self.rpc.call("evm_mine")
            sent += len(calls)
            hits += block_hits
        last = int(await self.rpc.call("eth_blockNumber"), 16)
        await self._check(first, last, per_block)
        await self.rpc.call("evm_setAutomine", True)
        return FilledRange(first, last, sent, hits)

    async def _check(self, first: int, last: int, per_block: int) -> None:
        """Every block holds exactly the transactions sent for it (nothing spilled over)."""
        if last - first + 1 <= 0:
            raise RuntimeError("no block was mined")
        numbers = range(first, last + 1)
        for lo in range(0, len(numbers), 200):
            chunk = numbers[lo : lo + 200]
            counts = await self.rpc.batch(
                [("eth_getBlockTransactionCountByNumber", [hex(n)]) for n in chunk]
            )
            bad = [n for n, c in zip(chunk, counts, strict=True) if int(c, 16) != per_block]
            if bad:
                raise RuntimeError(f"block {bad[0]} does not hold {per_block} transactions")
