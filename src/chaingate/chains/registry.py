"""The one explicit map from a network kind to its chain family. No discovery, no scanning."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from chaingate.chains.base import AddressCodec, ChainAdapter
from chaingate.chains.bitcoin.adapter import BitcoinAdapter
from chaingate.chains.bitcoin.addresses import BitcoinAddresses
from chaingate.chains.bitcoin.rpc import genesis_probe as bitcoin_genesis_probe
from chaingate.chains.bitcoin.rpc import head_probe as bitcoin_head_probe
from chaingate.chains.evm.adapter import EvmAdapter
from chaingate.chains.evm.addresses import EvmAddresses
from chaingate.chains.evm.rpc import chain_id_probe
from chaingate.chains.evm.rpc import head_probe as evm_head_probe
from chaingate.chains.tron.adapter import TronAdapter
from chaingate.chains.tron.addresses import TronAddresses
from chaingate.chains.tron.rpc import genesis_probe as tron_genesis_probe
from chaingate.chains.tron.rpc import head_probe as tron_head_probe
from chaingate.domain import Network, NetworkKind
from chaingate.providers import EndpointPool, HeadProbe
from chaingate.providers.identity import ChainIdentity, WrongChainSink
from chaingate.providers.metrics import ProviderMetrics


def address_codec(network: Network) -> AddressCodec:
    """Pure address logic (derivation, validation) of ``network``; no I/O."""
    match network.kind:
        case NetworkKind.EVM:
            return EvmAddresses(network)
        case NetworkKind.BITCOIN:
            return BitcoinAddresses(network)
        case NetworkKind.TRON:
            return TronAddresses(network)


def _head_probe(network: Network) -> HeadProbe:
    match network.kind:
        case NetworkKind.EVM:
            return evm_head_probe
        case NetworkKind.BITCOIN:
            return bitcoin_head_probe
        case NetworkKind.TRON:
            return tron_head_probe


def chain_identity(network: Network) -> ChainIdentity | None:
    """What each endpoint of ``network`` must prove before use (None: nothing configured)."""
    match network.kind:
        case NetworkKind.EVM:
            expected = str(network.chain_id) if network.chain_id is not None else None
            return ChainIdentity("chain id", chain_id_probe, expected)
        case NetworkKind.BITCOIN:
            probe = bitcoin_genesis_probe
        case NetworkKind.TRON:
            probe = tron_genesis_probe
    if network.genesis is None and not network.learn_genesis:
        return None
    return ChainIdentity("genesis block", probe, network.genesis)


def open_pool(
    network: Network,
    metrics: ProviderMetrics | None = None,
    on_wrong_chain: WrongChainSink | None = None,
) -> EndpointPool:
    """The network's endpoint pool (use it as ``async with``)."""
    return EndpointPool(
        network.name,
        network.endpoints,
        head_probe=_head_probe(network),
        max_head_lag=network.max_head_lag,
        metrics=metrics,
        identity=chain_identity(network),
        on_wrong_chain=on_wrong_chain,
    )


def build_adapter(network: Network, pool: EndpointPool) -> ChainAdapter:
    match network.kind:
        case NetworkKind.EVM:
            return EvmAdapter(network, pool)
        case NetworkKind.BITCOIN:
            return BitcoinAdapter(network, pool)
        case NetworkKind.TRON:
            return TronAdapter(network, pool)


@asynccontextmanager
async def open_adapter(
    network: Network, metrics: ProviderMetrics | None = None
) -> AsyncIterator[ChainAdapter]:
    """The network's adapter over its own endpoint pool, closed on exit."""
    async with open_pool(network, metrics) as pool:
        yield build_adapter(network, pool)
