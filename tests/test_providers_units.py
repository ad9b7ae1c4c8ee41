"""Pure rules of the provider layer: redaction, exact JSON, envelope and error classification."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from chaingate.domain import Endpoint
from chaingate.errors import ChainDataError, RequestTooLargeError, RpcError, TransportError
from chaingate.providers import redact_text, redact_url
from chaingate.providers.health import BenchPolicy, EndpointState
from chaingate.providers.jsonrpc import make_request, rpc_error, unwrap_single
from chaingate.providers.ratelimit import TokenBucket
from chaingate.providers.transport import HttpReply, decode_json

KEY = "3c6e0b8a9c15224a8228b9a98ca1531d"
ENDPOINT = Endpoint("primary", f"https://nd-123-456.p2pify.com/{KEY}")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"https://nd-123-456.p2pify.com/{KEY}", "https://nd-123-456.p2pify.com/***"),
        (
            f"https://ethereum-mainnet.core.chainstack.com/{KEY}/",
            "https://ethereum-mainnet.core.chainstack.com/***",
        ),
        (f"https://user:{KEY}@btc.example.org:8332", "https://btc.example.org:8332/***"),
        (f"https://rpc.example.org/?apikey={KEY}", "https://rpc.example.org/***"),
        (f"wss://ws.example.org/v3/{KEY}", "wss://ws.example.org/***"),
        ("http://127.0.0.1:8545", "http://127.0.0.1:8545"),
        ("not a url", "<unparseable url>"),
    ],
)
def test_redact_url_keeps_host_and_drops_the_key(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert KEY not in redact_url(url)


def test_redact_text_redacts_every_url_inside_text() -> None:
    text = (
        f"Cannot connect to host https://a.example.com/{KEY} ssl:default; "
        f"retrying 'http://u:{KEY}@b.example.com:8332/wallet' (see https://docs.example.com)"
    )
    redacted = redact_text(text)
    assert KEY not in redacted
    assert "https://a.example.com/***" in redacted
    assert "http://b.example.com:8332/***" in redacted
    assert "https://docs.example.com" in redacted


def test_json_numbers_with_fractions_decode_as_exact_decimals() -> None:
    reply = decode_json('{"amount": 0.00001, "fee": 1e-8, "height": 840000}')
    assert reply["amount"] == Decimal("0.00001") and isinstance(reply["amount"], Decimal)
    assert reply["fee"] == Decimal("1e-8")
    assert reply["height"] == 840000 and isinstance(reply["height"], int)


@pytest.mark.parametrize(
    "message",
    [
        "query returned more than 10000 results",
        "block range is too wide",
        "exceed maximum block range: 5000",
        "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block range",
        "batch too large",
    ],
)
def test_size_refusals_are_classified_as_request_too_large(message: str) -> None:
    err = rpc_error("eth_getLogs", {"code": -32005, "message": message})
    assert isinstance(err, RequestTooLargeError)
    assert err.rpc_code == -32005


@pytest.mark.parametrize("message", ["execution reverted", "nonce too low", "Method not found"])
def test_other_node_errors_stay_plain_rpc_errors(message: str) -> None:
    err = rpc_error("eth_call", {"code": -32000, "message": message})
    assert type(err) is RpcError


def test_bitcoin_core_error_with_http_500_is_an_answer_not_a_transport_fault() -> None:
    # Bitcoin Core / litecoind answer RPC errors with HTTP 500 and an envelope echoing our id.
    request = make_request(7, "getblockhash", [10**9])
    body = {"result": None, "error": {"code": -8, "message": "Block height out of range"}, "id": 7}
    with pytest.raises(RpcError) as err:
        unwrap_single(ENDPOINT, HttpReply(500, body, True), request)
    assert not isinstance(err.value, TransportError)
    assert err.value.rpc_code == -8


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (HttpReply(500, None, False), TransportError),  # a load balancer's HTML error page
        (HttpReply(502, {"error": {"code": 1, "message": "bad gateway"}}, True), TransportError),
        (HttpReply(200, None, False), TransportError),  # not JSON
        (HttpReply(200, [1, 2], True), TransportError),  # not an object
        (HttpReply(200, {"jsonrpc": "2.0", "id": 8, "result": "0x1"}, True), ChainDataError),
        (HttpReply(200, {"jsonrpc": "2.0", "id": 7}, True), TransportError),
        (HttpReply(413, None, False), RequestTooLargeError),
    ],
)
def test_bad_envelopes_are_errors_never_results(reply: HttpReply, expected: type) -> None:
    with pytest.raises(expected):
        unwrap_single(ENDPOINT, reply, make_request(7, "eth_blockNumber", []))


def test_bitcoin_core_result_without_jsonrpc_field_is_accepted() -> None:
    body = {"result": Decimal("0.5"), "error": None, "id": 3}
    result = unwrap_single(ENDPOINT, HttpReply(200, body, True), make_request(3, "getbalance", []))
    assert result == Decimal("0.5")


def state() -> EndpointState:
    return EndpointState(ENDPOINT, BenchPolicy(base=1.0, cap=8.0, jitter=0.0))


def test_head_far_behind_is_lagging_and_recovers_when_caught_up() -> None:
    s = state()
    s.record_head(100, best=100, max_lag=5)
    assert s.is_available()
    s.record_head(101, best=110, max_lag=5)
    assert s.bench_reason() == "lagging" and not s.is_available()
    s.record_head(108, best=110, max_lag=5)
    assert s.is_available()


def test_head_stepping_back_while_others_are_ahead_is_benched() -> None:
    s = state()
    s.record_head(100, best=100, max_lag=5)
    s.record_head(98, best=100, max_lag=5)
    assert s.bench_reason() == "head_stepped_back"
    s.record_head(100, best=101, max_lag=5)
    assert s.is_available()


def test_chain_shrinking_everywhere_is_a_reorg_not_a_fault() -> None:
    s = state()
    s.record_head(100, best=100, max_lag=5)
    s.record_head(97, best=97, max_lag=5)  # every endpoint reports 97: the chain itself shrank
    assert s.is_available()


def test_failures_bench_with_growing_backoff_and_success_resets_it() -> None:
    s = state()
    durations = [s.record_failure() for _ in range(5)]
    assert durations == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert s.bench_reason() == "failing"
    s.record_success(0.01)
    assert s.is_available() and s.consecutive_failures == 0


def test_bench_jitter_only_shortens_the_bench() -> None:
    policy = BenchPolicy(base=1.0, cap=60.0, jitter=0.5)
    samples = {policy.duration(3) for _ in range(50)}
    assert all(2.0 <= d <= 4.0 for d in samples) and len(samples) > 1


async def test_token_bucket_waits_instead_of_failing() -> None:
    bucket = TokenBucket(rate=50.0, burst=5)
    started = time.monotonic()
    for _ in range(30):
        await bucket.acquire()
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 2.0  # 5 free, then 25 at 50/s = 0.5 s
