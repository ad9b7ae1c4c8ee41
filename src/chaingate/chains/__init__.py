"""Per-chain adapters. Each family package has the same module names:

``addresses`` (derivation and validation), ``codec`` (raw node shapes -> domain objects),
``rpc`` (typed calls over the provider pool), ``adapter`` (the ChainAdapter), ``txbuilder``
(withdrawals, later). ``registry`` maps a network kind to its adapter explicitly.
"""
