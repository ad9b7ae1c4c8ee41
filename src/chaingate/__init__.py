"""chaingate: deposit and withdrawal gateway between public blockchains and the platform ledger."""

__version__ = "0.1.0"
