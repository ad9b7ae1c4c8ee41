"""Bitcoin family: BIP84 P2WPKH deposit addresses, Bitcoin Core JSON-RPC blocks and mempool."""

from chaingate.chains.bitcoin.adapter import BitcoinAdapter
from chaingate.chains.bitcoin.addresses import BitcoinAddresses

__all__ = ["BitcoinAdapter", "BitcoinAddresses"]
