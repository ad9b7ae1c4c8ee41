"""One exception family for the whole gateway.

Every layer raises a subclass of ``ChaingateError``; callers classify errors by type, never by
the text of the message. Messages are safe to show an operator: they never carry a secret.
"""

from __future__ import annotations


class ChaingateError(Exception):
    """Raised for any failure the gateway itself detects.

    ``hint`` says what a person can do about it; the command line prints it after the message.
    A subclass may give a default for its whole family.
    """

    code = "internal"
    hint: str | None = None

    def __init__(self, *args: object, hint: str | None = None) -> None:
        super().__init__(*args)
        if hint is not None:
            self.hint = hint


# --- configuration -------------------------------------------------------------------------
class ConfigError(ChaingateError):
    """Raised when the chains/ registry or the environment holds an invalid value."""

    code = "config"
    hint = "fix that value (docs/configuration.md) and run the command again"


# --- provider layer ------------------------------------------------------------------------
class ProviderError(ChaingateError):
    """Raised when no endpoint could answer a request."""

    code = "provider"


class TransportError(ProviderError):
    """Raised when an endpoint could not be reached, timed out or answered HTTP 429/5xx."""


class RateLimitedError(TransportError):
    """Raised when an endpoint answered HTTP 429 or its local rate limit was exhausted."""


class EndpointLaggingError(ProviderError):
    """Raised when an endpoint's head is too far behind the best known head."""


class EndpointWrongChainError(ProviderError):
    """Raised when an endpoint serves another chain than the registry names (chain id, genesis)."""


class RpcError(ProviderError):
    """Raised when an endpoint answered with a JSON-RPC error object."""

    def __init__(self, message: str, rpc_code: int | None = None) -> None:
        super().__init__(message)
        self.rpc_code = rpc_code


class RequestTooLargeError(RpcError):
    """Raised when an endpoint refused a batch or a log range as too large."""


class NoHealthyEndpointError(ProviderError):
    """Raised when every endpoint of a network is down, lagging or exhausted."""


# --- chain data ----------------------------------------------------------------------------
class ChainDataError(ChaingateError):
    """Raised when a node's answer is malformed or contradicts what was asked (RequestCorrupted)."""

    code = "chain_data"


class IncompleteLogsError(ChainDataError):
    """Raised when an eth_getLogs answer or a block's receipts lack logs its logsBloom holds."""


class BlockNotFoundError(ChainDataError):
    """Raised when a block the gateway expects to exist is not (yet) served."""


class EndpointInconsistentError(ChainDataError):
    """Raised when an endpoint does not serve a block at or below the head it reports itself
    (a lagging backend behind a load balancer): an endpoint fault, never evidence of a reorg."""


class ReorgError(ChainDataError):
    """Raised when blocks do not link to the hashes the gateway stored."""


class ReorgTooDeepError(ReorgError):
    """Raised when a fork point lies below the stored window of block hashes."""


# --- store ---------------------------------------------------------------------------------
class StoreError(ChaingateError):
    """Raised when the database refuses or loses an operation."""

    code = "store"


class DatabaseUnavailableError(StoreError):
    """Raised when the database does not answer or refuses the connection."""

    hint = "start PostgreSQL there, or point CHAINGATE_DATABASE_URL at a server that runs"


class FencedOut(StoreError):
    """Raised when a write carries a lease epoch that no longer holds."""


class MigrationError(StoreError):
    """Raised when a migration cannot be applied or a recorded one has changed."""


# --- ledger --------------------------------------------------------------------------------
class LedgerError(ChaingateError):
    """Raised when the ledger refuses a request or cannot be reached."""

    code = "ledger"


class LedgerUnavailableError(LedgerError):
    """Raised when the ledger is down or answered 5xx; the request may be retried."""


class LedgerRejectedError(LedgerError):
    """Raised when the ledger answered 4xx; retrying the same request will not help."""


# --- alert sink ----------------------------------------------------------------------------
class AlertSinkError(ChaingateError):
    """Raised when the alert webhook cannot be reached or refuses an alert."""

    code = "alert_sink"


class AlertSinkUnavailableError(AlertSinkError):
    """Raised when the webhook is down, timed out or answered 5xx/408/425/429; send it again."""


class AlertSinkRejectedError(AlertSinkError):
    """Raised when the webhook answered another 4xx (or a redirect); ``status`` says which."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- signer --------------------------------------------------------------------------------
class SignerError(ChaingateError):
    """Raised when the signer refuses a job or cannot sign it."""

    code = "signer"


class KeystoreError(SignerError):
    """Raised when a key cannot be loaded: no keystore, a wrong passphrase, env keys off devnet."""

    code = "keystore"


class SignerRefusedError(SignerError):
    """Raised when a job fails a check the signer makes itself (seal, quorum, content hash,
    limit); the job is parked with a critical alert and nothing is signed."""

    code = "signer_refused"


# --- withdrawals: refusals by rule or by state -----------------------------------------------
class ConflictError(ChaingateError):
    """Raised when a request contradicts what is already recorded (the API answers 409)."""

    code = "conflict"


class IdempotencyConflictError(ConflictError):
    """Raised when a request_id is reused with a different request body."""

    code = "request_id_reused"


class InvalidTransitionError(ConflictError):
    """Raised when a withdrawal or batch would move to a status its state machine forbids."""

    code = "invalid_transition"


class StaleContentHashError(ConflictError):
    """Raised when an approval names a content hash other than the batch's current one."""

    code = "stale_content_hash"


class DuplicateApprovalError(ConflictError):
    """Raised when a principal approves a batch they already approved."""

    code = "already_approved"


class PermissionDeniedError(ChaingateError):
    """Raised when a principal may not take an action a rule reserves to others (API 403)."""

    code = "forbidden"


class MakerCannotApproveError(PermissionDeniedError):
    """Raised when the maker of a batch tries to approve it (maker-checker)."""

    code = "maker_cannot_approve"


class SealKeyMissingError(ChaingateError):
    """Raised when an approval must be sealed or checked but no seal key is configured."""

    code = "not_configured"


# --- validation (edge input) ---------------------------------------------------------------
class ValidationError(ChaingateError):
    """Raised when input at the edge (API, CLI) is invalid; the message says what to fix."""

    code = "invalid_request"


class FeeCapError(ValidationError):
    """Raised when the approved fee cap cannot pay what the transaction needs to be mined (EVM:
    the next block's base fee and tip, or a replacement's bump; TRON: the fee_limit the energy
    estimate asks for): it would not be mined, so it is not built."""

    code = "fee_cap_exceeded"


class InvalidAddressError(ValidationError):
    """Raised when an address is malformed or belongs to another network."""

    code = "invalid_address"

    def __init__(self, message: str, other_network: str | None = None) -> None:
        super().__init__(message)
        self.other_network = other_network


class LimitExceededError(ValidationError):
    """Raised when an amount is outside the asset's withdrawal limits."""

    code = "limit_exceeded"


class ApiCallError(ChaingateError):
    """Raised when the gateway API refuses an ops command's request (``status`` says how) or
    cannot be reached (``status`` None)."""

    code = "api"

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ChaingateError):
    """Raised when a requested object does not exist."""

    code = "not_found"


# --- address issuance ----------------------------------------------------------------------
class AddressIssuanceError(ChaingateError):
    """Raised when deposit addresses must not be issued from this database (yet)."""

    code = "address_issuance"


class AddressIndexInUseError(AddressIssuanceError):
    """Raised when a fresh database would issue addresses that already have on-chain history."""

    code = "address_index_in_use"


class XpubChangedError(AddressIssuanceError):
    """Raised when a network's xpub derives other addresses than the ones this database issued."""

    code = "xpub_changed"
