"""The ledger side: request signing, the ledger client, the outbox dispatcher, and the
reference ledger service used by devnet, the demo and the tests (SPEC section 6)."""
