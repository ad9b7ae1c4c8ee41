"""``chaingate demo`` (``make demo``): the main job end to end on the local devnet.

Brings the devnet up, gives the gateway a fresh database and the reference ledger one of its
own, runs the service (api, watchers, dispatcher) in-process, then drives the scenario through
the public API and the chains: deposits on Ethereum (ETH, NEXO), Bitcoin and TRON (TRX, USDT)
must be credited exactly; a dust ETH amount must be rejected; NEXO sent on the BSC stand-in to
the same 0x address must be rejected with a network-mismatch alert, which the gateway pushes to
a small signed-webhook receiver run by the demo. The exit code is 0 only if every one of those
outcomes was observed through the API, the ledger and the receiver. Then alice withdraws part of
it again: batches on Ethereum (ETH, NEXO), Bitcoin and TRON (TRX, one recipient a new account;
USDT) approved by a quorum of two, signed by ``chaingate signer`` in its own process, broadcast
and confirmed by the gateway, and checked on each chain (``onchain.py``: amounts received, the
txid and the fee the gateway reported).

How it is told (steps, live tables, summary) is ``story.py``; what the deposit act shows is
``sections.py``; the service's logs go to ``<devnet>/demo.log`` unless ``--verbose``.
"""

from chaingate.demo.outcomes import Expected, Seen, format_units, problems
from chaingate.demo.runner import run_demo

__all__ = ["Expected", "Seen", "format_units", "problems", "run_demo"]
