"""Talking to the TRON devnet from tests: its controls, the wallet API, and signing raw_data.

Signing here uses the project's protobuf writer and coincurve directly, so a test can send bytes
a well-behaved client would never build (expired, wrong reference block).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
from coincurve import PrivateKey

from chaingate.chains.tron.addresses import any_to_raw, raw_from_public_point, to_base58
from chaingate.chains.tron.proto import encode_raw_data, txid_of
from chaingate.devnet.tron_node import GENESIS_KEYS
from chaingate.domain.batch_content import BatchContent
from chaingate.domain.signing_plan import TronPlan

TYPE_URL = "type.googleapis.com/protocol.{}"


class TronKey:
    def __init__(self, secret: bytes) -> None:
        self.key = PrivateKey(secret)
        self.raw = raw_from_public_point(self.key.public_key.format(compressed=False)[1:])
        self.address = to_base58(self.raw)

    @classmethod
    def fresh(cls, label: str) -> TronKey:
        return cls(hashlib.sha256(f"{label} {time.time_ns()}".encode()).digest())

    @classmethod
    def genesis(cls, index: int = 0) -> TronKey:
        return cls(bytes.fromhex(GENESIS_KEYS[index]))

    def sign(self, raw: dict[str, Any]) -> dict[str, Any]:
        raw_bytes = encode_raw_data(raw)
        txid = txid_of(raw_bytes)
        signature = self.key.sign_recoverable(bytes.fromhex(txid), hasher=None).hex()
        return {
            "txID": txid,
            "raw_data": raw,
            "raw_data_hex": raw_bytes.hex(),
            "signature": [signature],
        }


class TronNode:
    def __init__(self, url: str) -> None:
        self.url = url

    async def post(self, path: str, **body: Any) -> Any:
        async with httpx.AsyncClient() as client:
            reply = await client.post(f"{self.url}/{path}", json=body)
        reply.raise_for_status()
        return reply.json()

    async def control(self, name: str, **body: Any) -> Any:
        return await self.post(f"devnet/{name}", **body)

    async def mine(self, count: int = 1) -> int:
        return int((await self.control("mine", count=count))["head"])

    async def balance(self, address: str) -> int:
        account = await self.post("wallet/getaccount", address=address, visible=True)
        return int(account.get("balance", 0))

    async def token_balance(self, contract: str, holder: TronKey) -> int:
        """``balanceOf(holder)`` of a TRC-20 contract, by a dry run."""
        answer = await self.post(
            "wallet/triggerconstantcontract",
            owner_address=holder.address,
            contract_address=contract,
            function_selector="balanceOf(address)",
            parameter=transfer_data(holder.raw, 1)[8:72],
            visible=True,
        )
        return int(answer["constant_result"][0], 16)

    async def sent_by(self, owner: str, first_block: int) -> list[str]:
        """The txids of every transaction ``owner`` signed in the blocks from ``first_block`` to
        the head (what really reached the chain, whatever the gateway recorded)."""
        head = int((await self.post("wallet/getnowblock"))["block_header"]["raw_data"]["number"])
        txids = []
        for start in range(first_block, head + 1, 100):
            answer = await self.post(
                "wallet/getblockbylimitnext",
                startNum=start,
                endNum=min(start + 100, head + 1),
                visible=True,
            )
            for block in answer.get("block", []):
                for tx in block.get("transactions", []):
                    value = tx["raw_data"]["contract"][0]["parameter"]["value"]
                    if value.get("owner_address") == owner:
                        txids.append(tx["txID"])
        return txids

    async def exists(self, address: str) -> bool:
        return bool(await self.post("wallet/getaccount", address=address, visible=True))

    async def info(self, txid: str) -> dict[str, Any]:
        return dict(await self.post("wallet/gettransactioninfobyid", value=txid))

    async def reference(self, solid: bool = True) -> dict[str, Any]:
        """ref_block_bytes/hash of the (solidified) head, as a wallet builds them."""
        path = "walletsolidity/getnowblock" if solid else "wallet/getnowblock"
        block = await self.post(path)
        block_id = str(block["blockID"])
        return {"ref_block_bytes": block_id[12:16], "ref_block_hash": block_id[16:32]}

    async def raw(
        self,
        kind: str,
        value: dict[str, Any],
        expiration_ms: int = 60_000,
        fee_limit: int = 0,
        reference: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = int(time.time() * 1000)
        raw: dict[str, Any] = {
            "contract": [
                {"parameter": {"value": value, "type_url": TYPE_URL.format(kind)}, "type": kind}
            ],
            **(reference or await self.reference()),
            "expiration": now + expiration_ms,
            "timestamp": now,
        }
        if fee_limit:
            raw["fee_limit"] = fee_limit
        return raw

    async def broadcast(self, signed: dict[str, Any]) -> dict[str, Any]:
        answer = dict(await self.post("wallet/broadcasttransaction", **signed))
        if "message" in answer:
            answer["text"] = bytes.fromhex(answer["message"]).decode()
        return answer


def transfer_data(to_raw: bytes, amount: int) -> str:
    return "a9059cbb" + to_raw[1:].hex().rjust(64, "0") + f"{amount:064x}"


async def plan_for(
    node: TronNode, hot: TronKey, content: BatchContent, contract: str | None
) -> TronPlan:
    """What the planner reads: solidified head, prices, dry runs, activation, hot balance."""
    block = await node.post("walletsolidity/getnowblock")
    header = block["block_header"]["raw_data"]
    params = {
        p["key"]: p.get("value", 0)
        for p in (await node.post("wallet/getchainparameters"))["chainParameter"]
    }
    energy, inactive = {}, set()
    for output in content.outputs:
        if contract is not None:
            answer = await node.post(
                "wallet/triggerconstantcontract",
                owner_address=hot.address,
                contract_address=contract,
                data=transfer_data(any_to_raw(output.destination), output.amount),
                visible=True,
            )
            energy[output.withdrawal_id] = int(answer["energy_used"])
        elif not await node.exists(output.destination):
            inactive.add(output.withdrawal_id)
    return TronPlan(
        from_address=hot.address,
        ref_number=int(header["number"]),
        ref_block_id=block["blockID"],
        ref_timestamp=int(header["timestamp"]),
        energy_price=params["getEnergyFee"],
        bandwidth_price=params["getTransactionFee"],
        activation_fee=params["getCreateAccountFee"]
        + params["getCreateNewAccountFeeInSystemContract"],
        hot_balance=await node.balance(hot.address),
        energy=energy,
        inactive=frozenset(inactive),
    )
