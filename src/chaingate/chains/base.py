"""The contract between the chain-agnostic core and each chain family."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from chaingate.domain import BlockRef, ChainHead, Network, ScanResult, Transfer


class WatchedAddresses(Protocol):
    """Our deposit addresses as the raw bytes a chain names a recipient by (see
    ``AddressCodec.raw_key``): an adapter probes with the bytes it decoded, and only for a hit
    renders the text match key ``Transfer.to`` carries. A million keys fit in ~85 MiB this way,
    and TRON's decoder needs no base58 per transaction."""

    def __contains__(self, raw: object, /) -> bool: ...


@dataclass(frozen=True, slots=True)
class DerivedAddress:
    index: int
    address: str  # as shown to the user (EIP-55, bech32, base58 T-address)
    match_key: str  # as adapters put it in ``Transfer.to``


class AddressCodec(Protocol):
    """Pure address logic of one network: derivation from the xpub and validation."""

    def derive(self, index: int) -> DerivedAddress:
        """The deposit address at ``index`` (raises ConfigError when no xpub is configured)."""
        ...

    def normalize(self, text: str) -> str:
        """The canonical display form of ``text``; InvalidAddressError when it is not an
        address of this network (with ``other_network`` set when it is recognisably another's)."""
        ...

    def match_key(self, address: str) -> str:
        """The key ``Transfer.to`` carries for a valid address of this network."""
        ...

    def raw_key(self, match_key: str) -> bytes:
        """The bytes ``match_key`` is watched by (EVM: the 20-byte account, TRON: the 21-byte
        0x41 account, Bitcoin: the scriptPubKey); ValueError when it is no match key."""
        ...

    def min_output(self, address: str) -> int:
        """The least amount one payment to ``address`` may carry (Bitcoin: the dust limit of
        its script type; 1 where the chain has no such rule)."""
        ...


# A check of one answer, run inside the pool on the endpoint that gave it: it raises
# ChainDataError when the answer is malformed or is not what was asked for, and the pool then
# books the failure against that endpoint and asks another one (Electrum's RequestCorrupted).
Check = Callable[[Any], None]


class RpcClient(Protocol):
    """JSON-RPC through the provider pool (EVM, Bitcoin)."""

    async def request(
        self,
        method: str,
        params: Sequence[Any] = (),
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any: ...

    async def batch(
        self,
        calls: Sequence[tuple[str, Sequence[Any]]],
        *,
        checks: Sequence[Check | None] | None = None,
    ) -> list[Any]:
        """Idempotent calls sent as JSON-RPC batches, split when refused; results in order.
        ``checks`` (one per call) run on each answer inside the pool."""
        ...

    def pinned(self, avoid: str | None = None) -> AbstractAsyncContextManager[str]:
        """Every call inside goes to one endpoint (yielded by name), not ``avoid`` if another
        is usable; an EndpointInconsistentError raised inside is booked against it."""
        ...


class HttpClient(Protocol):
    """Plain HTTP JSON through the provider pool (TRON /wallet, /walletsolidity)."""

    async def post(
        self,
        path: str,
        payload: dict[str, Any] | None = None,
        *,
        idempotent: bool = True,
        check: Check | None = None,
    ) -> Any: ...

    def pinned(self, avoid: str | None = None) -> AbstractAsyncContextManager[str]:
        """Every call inside goes to one endpoint (yielded by name), not ``avoid`` if another
        is usable; an EndpointInconsistentError raised inside is booked against it."""
        ...


class ChainAdapter(Protocol):
    """What the watcher needs from a chain. Adapters know nothing about the database."""

    @property
    def network(self) -> Network: ...

    @property
    def addresses(self) -> AddressCodec: ...

    async def head(self) -> ChainHead:
        """The best head (and the finalized one where the chain has it)."""
        ...

    async def block_ref(self, number: int) -> BlockRef:
        """Hash and parent hash of the canonical block at ``number`` (BlockNotFoundError when
        the endpoint that answered does not serve it)."""
        ...

    def pinned(self, avoid: str | None = None) -> AbstractAsyncContextManager[str]:
        """Reads inside go to one endpoint, yielded by name (not ``avoid`` where another is
        usable): its own head, then its blocks. An EndpointInconsistentError raised inside
        (it does not serve a block at or below its own head) fails that endpoint over."""
        ...

    async def scan(self, start: int, end: int, watched: WatchedAddresses) -> ScanResult:
        """Blocks ``start..end`` (inclusive, consecutive) and the transfers to ``watched``."""
        ...

    async def pending(self, watched: WatchedAddresses) -> list[Transfer]:
        """Unconfirmed transfers to ``watched`` (mempool); [] where the chain has none."""
        ...

    @property
    def mempool_complete(self) -> bool:
        """Whether the last ``pending()`` saw the whole mempool (one decoded bit by bit over
        several calls is not complete yet, and nothing may be judged gone from it)."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BalanceReader(Protocol):
    """Optional adapter capability: native-coin balances at a block, for balance reconciliation
    (``watcher/reconcile.py``). An adapter that cannot read balances simply lacks the method, and
    its networks are not reconciled."""

    async def native_balances(
        self, addresses: Sequence[str], height: int, block_hash: str | None = None
    ) -> dict[str, int]:
        """The native balance (base units) of each address at block ``height``, keyed by the
        address as given (``Transfer.to`` match keys). With ``block_hash`` the balances are those
        of exactly that block (the one the watcher scanned at ``height``), not of whatever block
        holds that height now."""
        ...


@runtime_checkable
class AddressHistory(Protocol):
    """Adapter capability: has anything ever touched these addresses on chain? Read-only.

    Asked once per network, before a fresh database issues its first deposit address: if the
    xpub's first addresses were used (another deployment, an earlier database), issuing them
    again would give one address to two users (see ``chaingate.issuance``)."""

    async def addresses_with_history(self, addresses: Sequence[DerivedAddress]) -> list[int]:
        """The derivation indexes among ``addresses`` that show on-chain use (a balance of a
        listed asset, a sent transaction, an activated account; what the family can see)."""
        ...
