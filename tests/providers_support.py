"""Helpers for the provider tests: a real anvil and fault proxies in front of it.

Test modules wrap these in fixtures (the lead may swap ``running_anvil`` for the shared devnet
fixture later).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from faultproxy import FaultProxy, free_port

NODE_MODULES = Path(__file__).resolve().parent.parent / "node_modules"


def anvil_command() -> list[str]:
    """The platform binary itself when present: the node wrapper in .bin/ does not reap its
    child on SIGTERM, which leaves a zombie anvil behind every test module."""
    binaries = sorted(NODE_MODULES.glob("@foundry-rs/anvil-*/bin/anvil"))
    return [str(binaries[0] if binaries else NODE_MODULES / ".bin" / "anvil")]


def rpc(url: str, method: str, params: list[Any] | None = None) -> Any:
    """A plain, fault-free JSON-RPC call straight to the node (the test's source of truth)."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    req = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        reply = json.loads(resp.read())
    if reply.get("error"):
        raise RuntimeError(reply["error"])
    return reply["result"]


def mined(url: str, tx_hash: str, timeout: float = 10.0) -> dict[str, Any]:
    """The receipt of ``tx_hash`` once it is mined: anvil answers eth_sendTransaction when the
    transaction is in its pool, which can be a moment before the block holding it exists."""
    deadline = time.monotonic() + timeout
    while (receipt := rpc(url, "eth_getTransactionReceipt", [tx_hash])) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{tx_hash} was not mined within {timeout}s")
        time.sleep(0.05)
    result: dict[str, Any] = receipt
    return result


@contextlib.contextmanager
def running_anvil() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*anvil_command(), "--host", "127.0.0.1", "--port", str(port), "--silent"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                rpc(url, "eth_chainId")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("anvil did not start") from None
                time.sleep(0.1)
        rpc(url, "anvil_mine", [hex(30)])  # heights to lag behind and blocks to fetch
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.asynccontextmanager
async def two_proxies(anvil_url: str) -> AsyncIterator[tuple[FaultProxy, FaultProxy]]:
    first, second = FaultProxy(anvil_url), FaultProxy(anvil_url)
    await first.start()
    await second.start()
    try:
        yield first, second
    finally:
        await first.stop()
        await second.stop()
