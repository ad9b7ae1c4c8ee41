"""A JSON-RPC proxy that misbehaves on purpose, for fault tests against a real node.

It forwards POSTed JSON-RPC (single or batch) to an upstream node and can be told, at any time,
to delay, drop the connection, answer 429/500, rewrite block hashes, report a lagging or
backward-stepping head, refuse large batches or wide eth_getLogs ranges, drop every log of an
eth_getLogs answer or of a block's receipts, or mangle a block. It counts what it saw.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
from aiohttp import web

from chaingate.chains.evm.header import header_hash

WRONG_HASH = "0x" + "ba" * 32


@dataclass
class Faults:
    delay: float = 0.0  # seconds before answering (or before dropping)
    drop: bool = False  # close the connection without an answer
    status: int | None = None  # answer this HTTP status (429, 500, ...) without forwarding
    wrong_hash: bool = False  # rewrite the `hash` of eth_getBlockBy{Number,Hash} results
    head_offset: int = 0  # eth_blockNumber answers this many blocks less than the node
    max_batch: int | None = None  # refuse JSON-RPC batches larger than this
    batch_refusal: Literal["413", "error"] = "413"
    max_log_range: int | None = None  # refuse eth_getLogs spanning more blocks than this
    # A backend this many blocks behind: its head is lower and blocks above it are not served.
    lag: int = 0
    # A load balancer mixing backends: the real head, but the top blocks are not served.
    unserved_top: int = 0
    # Methods answered with a JSON-RPC "method not found" (a hosted plan that does not offer it).
    refused_methods: frozenset[str] = frozenset()
    # getrawmempool answers this list (a backend whose mempool still holds mined transactions).
    frozen_mempool: list[str] | None = None
    drop_logs: bool = False  # answer every eth_getLogs with [] (a backend missing its log index)
    # eth_getBlockReceipts answers lose every log (the receipts' logsBloom kept as served)
    drop_receipt_logs: bool = False
    malformed_block: bool = False  # eth_getBlockByNumber answers lose their transaction list
    # Hold a request for this block number (eth_getBlockByNumber) until ``FaultProxy.release``
    # is set, after letting ``hold_skip`` such requests through: a caller frozen mid-step.
    hold_block: int | None = None
    hold_skip: int = 0
    # Heights whose next eth_getBlockByNumber answer is a block of another branch: a sibling
    # with other extraData and its hash recomputed (self-consistent, as a backend on a
    # short-lived fork serves it), once per height.
    sibling_blocks: set[int] = field(default_factory=set)
    # A request asking for any of these blocks (eth_getBlockByNumber) is answered HTTP 500.
    failing_blocks: frozenset[int] = frozenset()


@dataclass
class Seen:
    methods: Counter[str] = field(default_factory=Counter)  # every call, batched or not
    http_requests: int = 0
    batch_sizes: list[int] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)  # time.monotonic() per HTTP request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.faults = Faults()
        self.seen = Seen()
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.url = ""
        self.holding = asyncio.Event()  # a request is being held (Faults.hold_block)
        self.release = asyncio.Event()  # set to let the held request through

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()
        # A fresh upstream connection per call: a stale keep-alive connection to the node would
        # surface as a fault the test did not ask for.
        self._client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def reset(self) -> None:
        self.faults = Faults()
        self.seen = Seen()

    # --- the handler ------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self._count(body)
        await self._hold(body)
        faults = self.faults
        if faults.delay:
            await asyncio.sleep(faults.delay)
        if faults.drop:
            assert request.transport is not None
            request.transport.abort()
            return web.Response()
        if faults.status is not None:
            return web.Response(status=faults.status, text="fault injected")
        if faults.failing_blocks and self._asks_failing_block(body):
            return web.Response(status=500, text="fault injected for a block")
        node_head = await self._node_head()
        if isinstance(body, list):
            return await self._batch(body, node_head)
        refusal = self._log_range_refusal(body) or self._unserved(body, node_head)
        if refusal is not None:
            return web.json_response(refusal)
        reply = await self._forward(body)
        return web.json_response(self._rewrite(body, reply))

    async def _hold(self, body: Any) -> None:
        wanted = self.faults.hold_block
        if wanted is None:
            return
        items = body if isinstance(body, list) else [body]
        asked = any(
            item.get("method") == "eth_getBlockByNumber" and item["params"][0] == hex(wanted)
            for item in items
        )
        if not asked:
            return
        if self.faults.hold_skip > 0:
            self.faults.hold_skip -= 1
            return
        self.faults.hold_block = None  # held once
        self.holding.set()
        await self.release.wait()

    def _asks_failing_block(self, body: Any) -> bool:
        for item in body if isinstance(body, list) else [body]:
            if item.get("method") != "eth_getBlockByNumber":
                continue
            number = (item.get("params") or [None])[0]
            asked = int(number, 16) if isinstance(number, str) and number[:2] == "0x" else None
            if asked in self.faults.failing_blocks:
                return True
        return False

    def _count(self, body: Any) -> None:
        self.seen.http_requests += 1
        self.seen.arrivals.append(time.monotonic())
        items = body if isinstance(body, list) else [body]
        if isinstance(body, list):
            self.seen.batch_sizes.append(len(body))
        for item in items:
            self.seen.methods[item.get("method", "?")] += 1

    async def _batch(self, body: list[Any], node_head: int | None) -> web.StreamResponse:
        faults = self.faults
        if faults.max_batch is not None and len(body) > faults.max_batch:
            if faults.batch_refusal == "413":
                return web.Response(status=413, text="request entity too large")
            return web.json_response(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "batch too large"},
                }
            )
        refusals = {
            i: self._log_range_refusal(item) or self._unserved(item, node_head)
            for i, item in enumerate(body)
        }
        forward = [item for i, item in enumerate(body) if refusals[i] is None]
        replies = await self._forward(forward) if forward else []
        by_id = {r["id"]: r for r in replies}
        out = []
        for i, item in enumerate(body):
            refusal = refusals[i]
            out.append(refusal if refusal is not None else self._rewrite(item, by_id[item["id"]]))
        return web.json_response(out)

    async def _forward(self, body: Any) -> Any:
        assert self._client is not None
        async with self._client.post(self.upstream, json=body) as resp:
            return await resp.json(content_type=None)

    async def _node_head(self) -> int | None:
        if not (self.faults.lag or self.faults.unserved_top):
            return None
        reply = await self._forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})
        return int(reply["result"], 16)

    def _unserved(self, call: dict[str, Any], node_head: int | None) -> dict[str, Any] | None:
        """``null`` for a block the lagging backend (or the unlucky one) does not have; the
        refusal of a refused method; the frozen mempool."""
        method = call.get("method")
        if method in self.faults.refused_methods:
            error = {"code": -32601, "message": "Method not found"}
            return {"result": None, "error": error, "id": call["id"]}
        if method == "getrawmempool" and self.faults.frozen_mempool is not None:
            return {"id": call["id"], "result": self.faults.frozen_mempool, "error": None}
        if node_head is None or call.get("method") != "eth_getBlockByNumber":
            return None
        number = call["params"][0]
        if not (isinstance(number, str) and number.startswith("0x")):
            return None
        served = node_head - max(self.faults.lag, self.faults.unserved_top)
        if int(number, 16) <= served:
            return None
        return {"jsonrpc": "2.0", "id": call["id"], "result": None}

    def _log_range_refusal(self, call: dict[str, Any]) -> dict[str, Any] | None:
        limit = self.faults.max_log_range
        if limit is None or call.get("method") != "eth_getLogs":
            return None
        flt = call["params"][0]
        start, end = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
        if end - start + 1 <= limit:
            return None
        # The message BSC's geth fork gives for a range over its cap.
        message = f"exceed maximum block range: {limit}"
        return {"jsonrpc": "2.0", "id": call["id"], "error": {"code": -32000, "message": message}}

    def _rewrite(self, call: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        method, result = call.get("method"), reply.get("result")
        if result is None:
            return reply
        if (
            method == "eth_getBlockByNumber"
            and int(result["number"], 16) in self.faults.sibling_blocks
        ):
            self.faults.sibling_blocks.discard(int(result["number"], 16))
            sibling = {**result, "extraData": "0x" + "5b" * 8}
            return {**reply, "result": {**sibling, "hash": header_hash(sibling)}}
        if self.faults.wrong_hash and method in ("eth_getBlockByNumber", "eth_getBlockByHash"):
            return {**reply, "result": {**result, "hash": WRONG_HASH}}
        if self.faults.malformed_block and method == "eth_getBlockByNumber":
            return {**reply, "result": {**result, "transactions": "garbage"}}
        if self.faults.drop_logs and method == "eth_getLogs":
            return {**reply, "result": []}
        if self.faults.drop_receipt_logs and method == "eth_getBlockReceipts":
            return {**reply, "result": [{**r, "logs": []} for r in result]}
        offset = self.faults.head_offset + self.faults.lag
        if offset and method == "eth_blockNumber":
            lowered = max(0, int(result, 16) - offset)
            return {**reply, "result": hex(lowered)}
        return reply


@asynccontextmanager
async def running_proxy(upstream: str) -> AsyncIterator[FaultProxy]:
    """A started proxy in front of ``upstream``, stopped afterwards."""
    proxy = FaultProxy(upstream)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
