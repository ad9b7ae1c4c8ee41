"""The reference ledger service (SPEC section 6): same contract as the real ledger."""

from chaingate.ledger.reference.app import build_ledger_app, serve_reference_ledger

__all__ = ["build_ledger_app", "serve_reference_ledger"]
