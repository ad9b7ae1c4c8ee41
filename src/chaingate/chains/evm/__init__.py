"""EVM chain family (Ethereum, BNB Chain and other EVM networks).

``addresses`` derives deposit addresses from the account xpub and validates input, ``codec``
decodes raw node shapes into Transfers, ``rpc`` wraps the JSON-RPC calls with checks on every
answer, ``adapter`` is the ChainAdapter the watcher drives, ``txbuilder`` builds withdrawal
transactions (pure). Import the module you need: this package imports nothing on its own, so
the signer can use ``txbuilder`` without pulling in the provider layer and aiohttp.
"""
