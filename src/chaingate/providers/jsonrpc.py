"""JSON-RPC 2.0 envelopes: build requests, check replies, classify node error objects.

A reply is checked where it enters: it must be an object answering *our* id with either a
``result`` or an ``error``. A JSON-RPC error object is the node's answer (``RpcError``), not a
transport fault, except a refusal for size, which becomes ``RequestTooLargeError`` so that the
batch and log-range splitters can act on its type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypedDict

from chaingate.domain import Endpoint
from chaingate.errors import ChainDataError, RequestTooLargeError, RpcError, TransportError
from chaingate.providers.transport import HttpReply, raise_for_status, require_json


class BatchRefusedError(RequestTooLargeError):
    """Raised when an endpoint refused a JSON-RPC batch as a whole (not one item of it)."""


class RpcRequest(TypedDict):
    jsonrpc: str
    id: int
    method: str
    params: list[Any]


# What nodes and hosted providers say when a request is too big for them (geth/Infura results
# cap, Erigon and BSC range caps, hosted-plan range caps, batch caps). Classified here, at the
# edge, so that everything past this point works with the exception type.
_TOO_LARGE_PHRASES = (
    "query returned more than",
    "block range is too wide",
    "exceed maximum block range",
    "exceeds max block range",
    "block range limit",
    "block range too large",
    "range is too large",
    "log response size exceeded",
    "response size exceeded",
    "response is too big",
    "batch too large",
    "batch size",
    "batch limit",
    "too many batch",
)


def make_request(request_id: int, method: str, params: Sequence[Any]) -> RpcRequest:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params)}


def rpc_error(method: str, error: Any) -> RpcError:
    """The exception for a node's error object (``RequestTooLargeError`` for size refusals)."""
    if isinstance(error, dict):
        message = str(error.get("message", ""))
        code = error.get("code")
    else:
        message, code = str(error), None
    rpc_code = code if isinstance(code, int) else None
    text = f"{method}: {message}" if method else message
    if any(phrase in message.lower() for phrase in _TOO_LARGE_PHRASES):
        return RequestTooLargeError(text, rpc_code)
    return RpcError(text, rpc_code)


def _is_error_envelope(body: Any, request_id: int) -> bool:
    return (
        isinstance(body, dict)
        and body.get("id") == request_id
        and isinstance(body.get("error"), dict)
    )


def unwrap_single(endpoint: Endpoint, reply: HttpReply, request: RpcRequest) -> Any:
    """The ``result`` of a single JSON-RPC reply, or the exception it stands for."""
    # Bitcoin Core (and litecoind) answer RPC errors with HTTP 500/404 and a proper error
    # envelope echoing our id; a proxy or load balancer failing does not echo our id.
    if reply.status not in (413, 429) and _is_error_envelope(reply.body, request["id"]):
        raise rpc_error(request["method"], reply.body["error"])
    raise_for_status(endpoint, reply)
    body = require_json(endpoint, reply)
    if not isinstance(body, dict):
        raise TransportError(f"{endpoint.name}: JSON-RPC reply is not an object")
    if body.get("id") != request["id"]:
        raise ChainDataError(f"{endpoint.name}: JSON-RPC reply answers another request id")
    if body.get("error") is not None:
        raise rpc_error(request["method"], body["error"])
    if "result" not in body:
        raise TransportError(f"{endpoint.name}: JSON-RPC reply has neither result nor error")
    return body["result"]


def unwrap_batch(endpoint: Endpoint, reply: HttpReply, requests: Sequence[RpcRequest]) -> list[Any]:
    """Results of a batch reply in request order.

    Raises ``RequestTooLargeError`` when the endpoint refused the batch as a whole (HTTP 413, a
    single error object, any non-list answer) so the caller halves it; ``ChainDataError`` when
    ids are missing, repeated or unknown; the item's ``RpcError`` when an item failed.
    """
    if reply.status == 413:
        raise BatchRefusedError(f"{endpoint.name}: HTTP 413 for a batch of {len(requests)}")
    raise_for_status(endpoint, reply)
    body = require_json(endpoint, reply)
    if not isinstance(body, list):
        detail = body.get("error") if isinstance(body, dict) else None
        err = rpc_error("batch", detail) if detail is not None else None
        raise BatchRefusedError(
            f"{endpoint.name}: batch of {len(requests)} refused"
            + (f" ({err})" if err is not None else ""),
            err.rpc_code if err is not None else None,
        )
    by_id: dict[Any, dict[str, Any]] = {}
    for item in body:
        if not isinstance(item, dict) or "id" not in item:
            raise ChainDataError(f"{endpoint.name}: batch reply item without id")
        key = item["id"]
        if key in by_id:
            raise ChainDataError(f"{endpoint.name}: batch reply repeats id {key!r}")
        by_id[key] = item
    wanted = {r["id"] for r in requests}
    if set(by_id) != wanted:
        raise ChainDataError(f"{endpoint.name}: batch reply ids do not match the request ids")
    results: list[Any] = []
    for request in requests:
        item = by_id[request["id"]]
        if item.get("error") is not None:
            raise rpc_error(request["method"], item["error"])
        if "result" not in item:
            raise ChainDataError(f"{endpoint.name}: batch reply item has neither result nor error")
        results.append(item["result"])
    return results
