"""Networks and assets as the chains/ registry describes them.

Amounts are integers in base units everywhere; ``decimals`` travels beside them for display.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class NetworkKind(StrEnum):
    EVM = "evm"
    BITCOIN = "bitcoin"
    TRON = "tron"


class AssetStandard(StrEnum):
    NATIVE = "native"  # ETH, BNB, BTC, TRX
    ERC20 = "erc20"  # EVM token (BEP-20 is the same standard on BNB Chain)
    TRC20 = "trc20"
    TRC10 = "trc10"  # TRON built-in token, identified by numeric token id


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One node endpoint. ``url`` is a secret (a hosted endpoint carries its key in the path)."""

    name: str
    url: str = field(repr=False)
    rate_limit: float = 25.0  # requests per second
    timeout: float = 10.0  # seconds per request
    weight: int = 1
    max_batch: int = 50  # JSON-RPC batch size the endpoint accepts
    max_log_range: int = 10_000  # eth_getLogs block span the endpoint accepts


@dataclass(frozen=True, slots=True)
class WithdrawalLimits:
    """An asset's withdrawal limits (SPEC section 12), in the asset's base units except
    ``fee_cap``, which is in base units of the network's native coin."""

    per_request: int  # the most one withdrawal may move
    per_user_day: int  # the most one user may withdraw in a rolling 24 hours
    per_batch: int  # the most one batch may move in total
    fee_cap: int  # the most one transaction may pay in network fees (covered by the approval)
    min_amount: int = 1  # the least one withdrawal may move
    max_batch_outputs: int = 100  # the most withdrawals one batch gathers


@dataclass(frozen=True, slots=True)
class Asset:
    symbol: str
    decimals: int
    standard: AssetStandard
    # Canonical contract identity: lowercase 0x hex (EVM), base58 T-address (TRC-20),
    # decimal token id (TRC-10); None for the native coin.
    contract: str | None = None
    min_deposit: int = 1
    confirmations: int | None = None  # overrides the network's count
    large_amount: int | None = None  # at or above this amount ...
    large_confirmations: int | None = None  # ... this many confirmations are required
    deposits_enabled: bool = True
    withdrawals_enabled: bool = True
    withdrawal_limits: WithdrawalLimits | None = None  # None: withdrawals are not configured

    def required_confirmations(self, amount: int, network_default: int) -> int:
        required = self.confirmations if self.confirmations is not None else network_default
        if (
            self.large_amount is not None
            and self.large_confirmations is not None
            and amount >= self.large_amount
        ):
            required = max(required, self.large_confirmations)
        return required


@dataclass(frozen=True, slots=True)
class Network:
    name: str
    kind: NetworkKind
    confirmations: int
    block_time: float
    poll_interval: float
    endpoints: tuple[Endpoint, ...]
    assets: tuple[Asset, ...]
    chain_id: int | None = None  # EVM
    hrp: str | None = None  # Bitcoin bech32 human-readable part
    # Bitcoin and TRON: the genesis block hash / block id every endpoint must serve at height 0.
    genesis: str | None = None
    # A devnet only: pin whatever genesis the first endpoint serves (its nodes make a new one).
    learn_genesis: bool = False
    testnet: bool = False
    # A local chain started by the project (anvil, regtest, the TRON devnet): the only place
    # where the signer accepts raw keys from the environment.
    devnet: bool = False
    # EVM: the hot address withdrawals are sent from (lowercase; its key is in the signer only),
    # and how long a withdrawal transaction may sit unmined before it is replaced.
    hot_address: str | None = None  # TRON: the base58 T-address
    replace_after: float = 300.0
    # TRON: seconds from signing to a transaction's expiration (fixed in its signed bytes)
    tx_expiration: int = 60
    watch_only: bool = False  # credits nothing; catches funds sent over the wrong network
    # For a watch-only network: whose deposit addresses to watch (same 0x address on every EVM
    # chain, so BEP-20 sent to an ERC-20 deposit address lands here).
    watch_addresses_of: tuple[str, ...] = ()
    xpub: str | None = field(default=None, repr=False)
    reorg_window: int = 256  # how many recent block hashes are kept for reorg detection
    scan_batch: int = 100  # blocks per watcher step when catching up
    max_head_lag: int = 5  # blocks an endpoint may trail the best head before it is benched
    tracing: bool = False  # endpoints serve debug_traceBlockByNumber (internal ETH transfers)
    coinbase_maturity: int = 100  # Bitcoin: coinbase outputs are spendable after this many
    solidity_finality: bool = False  # TRON: also wait for the solidified head
    start_height: int | None = None  # first block to scan on a fresh database (None: head)
    # Balance reconciliation (watcher/reconcile.py), where the adapter can read balances: every
    # reconcile_interval seconds, compare the native balances of the next reconcile_batch
    # deposit addresses with what the recorded deposits explain.
    reconcile: bool = True
    reconcile_interval: float = 60.0
    reconcile_batch: int = 500

    @property
    def native_asset(self) -> Asset:
        for asset in self.assets:
            if asset.standard is AssetStandard.NATIVE:
                return asset
        raise LookupError(f"network {self.name} lists no native asset")

    def asset(self, symbol: str) -> Asset:
        for asset in self.assets:
            if asset.symbol == symbol:
                return asset
        raise LookupError(f"network {self.name} lists no asset {symbol}")

    def asset_by_contract(self, contract: str) -> Asset | None:
        for asset in self.assets:
            if asset.contract is not None and asset.contract == contract:
                return asset
        return None

    @property
    def token_contracts(self) -> tuple[str, ...]:
        return tuple(a.contract for a in self.assets if a.contract is not None)
