"""The key-holding signer (SPEC section 7): its own process, talking to the database only.

``keystore`` loads the hot keys, ``evm`` signs EVM transactions; nothing here imports the
provider layer, the API or aiohttp (``make lint`` checks it with import-linter).
"""
