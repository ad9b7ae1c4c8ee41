"""The endpoint pool against a real anvil behind proxies that misbehave on purpose."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from eth_account import Account
from prometheus_client import CollectorRegistry

from chaingate.chains.evm.rpc import EvmRpc, chain_id_probe
from chaingate.domain import Endpoint
from chaingate.errors import (
    ChainDataError,
    NoHealthyEndpointError,
    RpcError,
    TransportError,
)
from chaingate.providers import BenchPolicy, EndpointPool, ProviderMetrics, RetryPolicy
from chaingate.providers.health import ChainCheck
from chaingate.providers.identity import ChainIdentity, WrongChain
from faultproxy import WRONG_HASH, FaultProxy
from harness import until
from providers_support import mined, rpc, running_anvil, two_proxies

SECRET_A, SECRET_B = "alpha-key-8f3a9c", "beta-key-77d1e0"
# anvil's first pre-funded dev account (public test key, not a secret).
DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"


async def eth_head_probe(pool: EndpointPool, endpoint: Endpoint) -> int:
    return int(await pool.request_on(endpoint, "eth_blockNumber"), 16)


@pytest.fixture(scope="module")
def anvil_url() -> Iterator[str]:
    with running_anvil() as url:
        yield url


@pytest.fixture(scope="module")
async def proxies(anvil_url: str) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    async with two_proxies(anvil_url) as pair:
        yield pair


@pytest.fixture(autouse=True)
def clean_proxies(proxies: tuple[FaultProxy, FaultProxy]) -> None:
    for proxy in proxies:
        proxy.reset()


def make_pool(
    alpha: FaultProxy, beta: FaultProxy, registry: CollectorRegistry | None = None, **kw: Any
) -> EndpointPool:
    # beta has weight 0 (a backup): alpha is always tried first while it is healthy.
    endpoints = [
        Endpoint(
            "alpha",
            f"{alpha.url}/v2/{SECRET_A}",
            timeout=0.5,
            weight=1,
            rate_limit=500,
            max_batch=kw.pop("alpha_batch", 50),
        ),
        Endpoint(
            "beta",
            f"{beta.url}/v2/{SECRET_B}",
            timeout=0.5,
            weight=0,
            rate_limit=500,
            max_batch=kw.pop("beta_batch", 50),
        ),
    ]
    return EndpointPool(
        "devnet-eth",
        endpoints,
        head_probe=eth_head_probe,
        max_head_lag=5,
        metrics=ProviderMetrics(registry),
        retry=RetryPolicy(rounds=2, initial=0.01, max_wait=0.05),
        bench=BenchPolicy(base=0.4, cap=1.0, jitter=0.0),
        identity=kw.pop("identity", None),
        on_wrong_chain=kw.pop("on_wrong_chain", None),
    )


@pytest.fixture
async def pool(proxies: tuple[FaultProxy, FaultProxy]) -> AsyncIterator[EndpointPool]:
    async with make_pool(*proxies) as p:
        yield p


def health_of(pool: EndpointPool, name: str) -> Any:
    return next(h for h in pool.health() if h.name == name)


FAULTS = {
    "timeout": {"delay": 1.5},
    "dropped connection": {"drop": True},
    "http 429": {"status": 429},
    "http 500": {"status": 500},
    "http 502": {"status": 502},
}


@pytest.mark.parametrize("fault", FAULTS.values(), ids=FAULTS.keys())
async def test_fails_over_benches_and_avoids_the_faulty_endpoint(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
    fault: dict[str, Any],
) -> None:
    alpha, beta = proxies
    for key, value in fault.items():
        setattr(alpha.faults, key, value)
    truth = rpc(anvil_url, "eth_blockNumber")

    assert await pool.request("eth_blockNumber") == truth
    assert alpha.seen.methods["eth_blockNumber"] == 1
    assert beta.seen.methods["eth_blockNumber"] == 1
    assert health_of(pool, "alpha").benched_reason == "failing"
    assert not health_of(pool, "alpha").healthy

    for _ in range(5):  # while benched, alpha is not asked again
        assert await pool.request("eth_blockNumber") == truth
    assert alpha.seen.methods["eth_blockNumber"] == 1
    assert beta.seen.methods["eth_blockNumber"] == 6


async def test_benched_endpoint_is_used_again_once_healthy(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    alpha.faults.status = 500
    await pool.request("eth_chainId")
    assert health_of(pool, "alpha").benched_reason == "failing"

    alpha.faults.status = None
    await asyncio.sleep(0.5)  # the 0.4 s bench expires
    assert await pool.request("eth_chainId") == "0x7a69"
    assert alpha.seen.methods["eth_chainId"] == 2
    assert beta.seen.methods["eth_chainId"] == 1
    assert health_of(pool, "alpha").healthy


async def test_successful_head_probe_recovers_a_benched_endpoint_early(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, _ = proxies
    alpha.faults.status = 500
    await pool.best_head()
    assert health_of(pool, "alpha").benched_reason == "failing"
    alpha.faults.status = None
    await pool.best_head()
    assert health_of(pool, "alpha").healthy


async def test_all_endpoints_down_raises_after_retry_rounds(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    alpha.faults.status = beta.faults.status = 503
    with pytest.raises(NoHealthyEndpointError):
        await pool.request("eth_chainId")
    # two rounds (RetryPolicy(rounds=2)), each over both endpoints
    assert alpha.seen.methods["eth_chainId"] == 2
    assert beta.seen.methods["eth_chainId"] == 2


def block_hash_check(requested: str) -> Any:
    def check(block: Any) -> None:
        if not isinstance(block, dict) or block.get("hash") != requested:
            raise ChainDataError(f"asked for block {requested}, got another")

    return check


async def test_wrong_block_hash_is_never_returned(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
) -> None:
    alpha, beta = proxies
    true_hash = rpc(anvil_url, "eth_getBlockByNumber", ["0x5", False])["hash"]
    alpha.faults.wrong_hash = True

    block = await pool.request(
        "eth_getBlockByHash", [true_hash, False], check=block_hash_check(true_hash)
    )
    assert block["hash"] == true_hash
    assert alpha.seen.methods["eth_getBlockByHash"] == 1
    assert beta.seen.methods["eth_getBlockByHash"] == 1
    assert health_of(pool, "alpha").benched_reason == "failing"


async def test_wrong_block_hash_everywhere_raises_chain_data_error(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
) -> None:
    alpha, beta = proxies
    true_hash = rpc(anvil_url, "eth_getBlockByNumber", ["0x6", False])["hash"]
    alpha.faults.wrong_hash = beta.faults.wrong_hash = True
    with pytest.raises(ChainDataError):
        await pool.request(
            "eth_getBlockByHash", [true_hash, False], check=block_hash_check(true_hash)
        )
    # bad data is not retried in rounds: one attempt per endpoint
    assert alpha.seen.methods["eth_getBlockByHash"] == 1
    assert beta.seen.methods["eth_getBlockByHash"] == 1


async def test_rpc_error_is_an_answer_not_a_failover(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    with pytest.raises(RpcError) as err:
        await pool.request("eth_noSuchMethod", [])
    assert err.value.rpc_code is not None
    assert alpha.seen.methods["eth_noSuchMethod"] == 1
    assert beta.seen.methods["eth_noSuchMethod"] == 0
    assert health_of(pool, "alpha").healthy


def signed_transfer(nonce: int) -> str:
    tx = {
        "to": "0x000000000000000000000000000000000000dEaD",
        "value": 1,
        "gas": 21_000,
        "maxFeePerGas": 10**11,
        "maxPriorityFeePerGas": 10**9,
        "nonce": nonce,
        "chainId": 31337,
        "type": 2,
    }
    signed = Account.sign_transaction(tx, DEV_KEY)
    raw: bytes = signed.raw_transaction
    return "0x" + raw.hex()


@pytest.mark.parametrize(
    "fault", [{"status": 500}, {"delay": 1.5}, {"drop": True}], ids=["500", "timeout", "drop"]
)
async def test_broadcast_is_sent_exactly_once(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
    fault: dict[str, Any],
) -> None:
    alpha, beta = proxies
    for key, value in fault.items():
        setattr(alpha.faults, key, value)
    dev = Account.from_key(DEV_KEY).address
    raw = signed_transfer(int(rpc(anvil_url, "eth_getTransactionCount", [dev, "pending"]), 16))

    with pytest.raises(TransportError):
        await pool.request("eth_sendRawTransaction", [raw], idempotent=False)
    await asyncio.sleep(1.2)  # let a delayed proxy finish whatever it was doing
    assert alpha.seen.methods["eth_sendRawTransaction"] == 1
    assert beta.seen.methods["eth_sendRawTransaction"] == 0
    assert alpha.seen.http_requests == 1


async def test_lagging_head_is_benched_until_it_catches_up(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
) -> None:
    alpha, beta = proxies
    truth = int(rpc(anvil_url, "eth_blockNumber"), 16)
    alpha.faults.head_offset = 10

    assert await pool.best_head() == truth
    assert health_of(pool, "alpha").benched_reason == "lagging"
    assert health_of(pool, "alpha").head == truth - 10
    await pool.request("eth_chainId")
    assert alpha.seen.methods["eth_chainId"] == 0  # not used while lagging
    assert beta.seen.methods["eth_chainId"] == 1

    alpha.faults.head_offset = 0
    assert await pool.best_head() == truth
    assert health_of(pool, "alpha").healthy
    await pool.request("eth_chainId")
    assert alpha.seen.methods["eth_chainId"] == 1


async def test_head_stepping_backwards_is_benched(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
) -> None:
    alpha, _ = proxies
    truth = int(rpc(anvil_url, "eth_blockNumber"), 16)
    assert await pool.best_head() == truth
    alpha.faults.head_offset = 2  # within max_head_lag, but lower than it said before

    assert await pool.best_head() == truth
    assert health_of(pool, "alpha").benched_reason == "head_stepped_back"
    alpha.faults.head_offset = 0
    await pool.best_head()
    assert health_of(pool, "alpha").healthy


async def test_rate_limit_keeps_request_rate_under_the_limit(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, _ = proxies
    rate = 20.0
    endpoint = Endpoint("limited", f"{alpha.url}/{SECRET_A}", rate_limit=rate, timeout=5)
    async with EndpointPool("devnet-eth", [endpoint]) as pool:
        started = asyncio.get_running_loop().time()
        await asyncio.gather(*(pool.request("eth_chainId") for _ in range(60)))
        elapsed = asyncio.get_running_loop().time() - started
    assert alpha.seen.methods["eth_chainId"] == 60  # it waited; nothing failed
    assert elapsed >= 1.6  # a burst of 20, then 40 more at 20/s take at least 2 s
    arrivals = alpha.seen.arrivals
    busiest = max(sum(1 for t in arrivals if s <= t < s + 1.0) for s in arrivals)
    # A burst plus one second's rate, with slack for when the proxy timestamps arrivals (a
    # loaded machine bunches them at the window's edges); without the limiter all 60 arrive
    # within the first second.
    assert busiest <= rate * 2 + 5


@pytest.mark.parametrize("refusal", ["413", "error"])
async def test_refused_batches_are_split_and_results_keep_order(
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
    refusal: str,
) -> None:
    alpha, beta = proxies
    alpha.faults.max_batch = 3
    alpha.faults.batch_refusal = refusal  # type: ignore[assignment]
    calls = [("eth_getBlockByNumber", [hex(n), False]) for n in range(12)]
    async with make_pool(alpha, beta, alpha_batch=10) as pool:
        blocks = await pool.batch(calls)
        assert [int(b["number"], 16) for b in blocks] == list(range(12))
        assert 10 in alpha.seen.batch_sizes  # sent at the configured size, refused, halved
        assert len([s for s in alpha.seen.batch_sizes if s > 3]) <= 3  # few refusals
        assert beta.seen.http_requests == 0  # a size refusal is not a failover
        seen = len(alpha.seen.batch_sizes)
        again = await pool.batch(calls)  # the learned cap is kept
        assert again == blocks
        assert max(alpha.seen.batch_sizes[seen:]) <= 3


async def test_batch_item_check_fails_over_the_whole_batch(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
) -> None:
    alpha, beta = proxies
    hashes = [rpc(anvil_url, "eth_getBlockByNumber", [hex(n), False])["hash"] for n in (1, 2)]
    alpha.faults.wrong_hash = True
    blocks = await pool.batch(
        [("eth_getBlockByHash", [h, False]) for h in hashes],
        checks=[block_hash_check(h) for h in hashes],
    )
    assert [b["hash"] for b in blocks] == hashes
    assert WRONG_HASH not in str(blocks)
    assert beta.seen.batch_sizes == [2]


async def test_batch_item_error_raises_rpc_error(pool: EndpointPool) -> None:
    with pytest.raises(RpcError):
        await pool.batch([("eth_chainId", []), ("eth_noSuchMethod", [])])


async def test_log_range_refusal_is_split(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
    anvil_url: str,
) -> None:
    alpha, beta = proxies
    dev = Account.from_key(DEV_KEY).address
    # Contract creations whose init code is PUSH1 0 PUSH1 0 LOG0: one log per block.
    for _ in range(6):
        tx = rpc(anvil_url, "eth_sendTransaction", [{"from": dev, "data": "0x60006000a000"}])
        mined(anvil_url, tx)
    head = int(rpc(anvil_url, "eth_blockNumber"), 16)
    log_filter = {"fromBlock": "0x0", "toBlock": hex(head)}
    expected = rpc(anvil_url, "eth_getLogs", [log_filter])
    assert len(expected) >= 6
    alpha.faults.max_log_range = 4

    # The gateway's one range splitter, over the pool: the cap is learned from the refusal.
    logs = await EvmRpc(pool, "devnet-eth").get_logs(0, head, [], max_range=10_000)
    assert logs == expected
    assert beta.seen.methods["eth_getLogs"] == 0  # refused ranges are split, not failed over
    assert alpha.seen.methods["eth_getLogs"] > 1


async def test_secrets_never_reach_logs_or_errors(
    pool: EndpointPool,
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    alpha.faults.drop = True
    beta.faults.status = 500
    with structlog.testing.capture_logs() as logs, pytest.raises(NoHealthyEndpointError) as err:
        await pool.request("eth_chainId")
    text = repr(logs) + str(err.value) + repr(err.value.__cause__) + repr(pool.endpoints)
    text += repr(pool.health())
    assert logs, "failures are logged"
    assert SECRET_A not in text and SECRET_B not in text


async def test_metrics_count_requests_errors_and_health(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    registry = CollectorRegistry()
    alpha.faults.status = 429
    async with make_pool(alpha, beta, registry) as pool:
        await pool.request("eth_chainId")
        await pool.best_head()
    labels = {"network": "devnet-eth", "endpoint": "alpha"}
    get = registry.get_sample_value
    assert get("chaingate_provider_requests_total", labels) == 2
    assert get("chaingate_provider_errors_total", {**labels, "kind": "rate_limited"}) == 2
    assert get("chaingate_provider_endpoint_healthy", labels) == 0
    assert get("chaingate_provider_endpoint_healthy", {**labels, "endpoint": "beta"}) == 1
    assert get("chaingate_provider_request_seconds_count", {**labels, "endpoint": "beta"}) == 2
    assert get("chaingate_provider_head_lag_blocks", {**labels, "endpoint": "beta"}) == 0


async def test_non_idempotent_post_is_sent_exactly_once(
    pool: EndpointPool, proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    alpha, beta = proxies
    alpha.faults.status = 500
    with pytest.raises(TransportError):
        await pool.post("/wallet/broadcasttransaction", {"raw": "00"}, idempotent=False)
    assert alpha.seen.http_requests == 1
    assert beta.seen.http_requests == 0


async def test_healthy_endpoints_share_load_by_weight(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    endpoints = [
        Endpoint("alpha", f"{alpha.url}/{SECRET_A}", weight=3, rate_limit=1000),
        Endpoint("beta", f"{beta.url}/{SECRET_B}", weight=1, rate_limit=1000),
    ]
    async with EndpointPool("devnet-eth", endpoints) as pool:
        for _ in range(200):
            await pool.request("eth_chainId")
    share = alpha.seen.methods["eth_chainId"] / 200
    assert 0.6 <= share <= 0.9  # expected 0.75
    assert beta.seen.methods["eth_chainId"] == 200 - alpha.seen.methods["eth_chainId"]


async def test_endpoints_of_another_chain_are_never_sent_a_call(
    proxies: tuple[FaultProxy, FaultProxy],
) -> None:
    alpha, beta = proxies
    events: list[WrongChain] = []

    async def sink(event: WrongChain) -> None:
        events.append(event)

    mainnet = ChainIdentity("chain id", chain_id_probe, "1")  # both serve anvil's 31337
    async with make_pool(alpha, beta, identity=mainnet, on_wrong_chain=sink) as pool:
        with pytest.raises(NoHealthyEndpointError):
            await pool.request("eth_blockNumber")
        with pytest.raises(NoHealthyEndpointError):
            await pool.post("/wallet/broadcasttransaction", {"raw": "00"}, idempotent=False)
        with pytest.raises(NoHealthyEndpointError):
            await pool.best_head()  # re-asked at the probe; still not counted
        health = pool.health_snapshot()
    for proxy in proxies:
        assert set(proxy.seen.methods) == {"eth_chainId"}
    assert [(e.endpoint, e.observed) for e in events] == [("alpha", "31337"), ("beta", "31337")]
    assert {(h.chain_check, h.benched_reason, h.healthy) for h in health} == {
        (ChainCheck.MISMATCH, "wrong_chain", False)
    }


async def test_a_learned_identity_is_pinned_at_first_contact(
    proxies: tuple[FaultProxy, FaultProxy], anvil_url: str
) -> None:
    learn = ChainIdentity("chain id", chain_id_probe, None)
    async with make_pool(*proxies, identity=learn) as pool:
        assert await pool.request("eth_blockNumber") == rpc(anvil_url, "eth_blockNumber")
        await pool.best_head()
        assert {h.chain_check for h in pool.health_snapshot()} == {ChainCheck.OK}
        assert pool._identity.expected == "31337"


async def test_a_liar_is_not_forgiven_by_its_next_good_answer(
    pool: EndpointPool, proxies: tuple[FaultProxy, FaultProxy]
) -> None:
    alpha, beta = proxies

    def named_right(block: Any) -> None:
        if block["hash"] == WRONG_HASH:
            raise ChainDataError("block renamed")

    alpha.faults.wrong_hash = True
    block = await pool.request("eth_getBlockByNumber", ["0x0", False], check=named_right)
    assert block["hash"] != WRONG_HASH and beta.seen.methods["eth_getBlockByNumber"] == 1
    alpha.faults.wrong_hash = False
    await pool.best_head()  # it answers its head well: a lie's bench runs its course anyway
    assert health_of(pool, "alpha").benched_reason == "failing"

    async def back() -> bool:
        return bool(health_of(pool, "alpha").healthy)

    await until(back, 5)
    for _ in range(5):  # healthy again, but asked after the endpoint that never lied
        await pool.request("eth_chainId")
    assert alpha.seen.methods["eth_chainId"] == 0 and beta.seen.methods["eth_chainId"] == 5
