"""The outgoing side, chain-agnostic: intake, batching, approvals and every status change.

Plain functions that take a database connection and a principal and raise ``ChaingateError``
subclasses: the API, the ops console, the ops CLI, the signer, the broadcaster and the tracker
all call the same code. Nothing here imports aiohttp or a chain provider.
"""

from chaingate.withdrawals.status import record_batch_status, record_status

__all__ = ["record_batch_status", "record_status"]
