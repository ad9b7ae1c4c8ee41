"""EVM chain family (Ethereum, BNB Chain and other EVM networks).

``addresses`` derives deposit addresses from the account xpub and validates input, ``codec``
decodes raw node shapes into Transfers, ``rpc`` wraps the JSON-RPC calls with checks on every
answer, ``adapter`` is the ChainAdapter the watcher drives.
"""

from chaingate.chains.evm.adapter import EvmAdapter
from chaingate.chains.evm.addresses import EvmAddresses

__all__ = ["EvmAdapter", "EvmAddresses"]
