"""aiohttp app: the java-tron HTTP subset chaingate and tronpy use, plus /devnet controls."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web

from chaingate.chains.tron.addresses import any_to_raw, to_base58
from chaingate.chains.tron.proto import decode_transaction, raw_data_json
from chaingate.devnet.tron_node import costs
from chaingate.devnet.tron_node import ledger as lg
from chaingate.devnet.tron_node.chain import BroadcastError, Chain
from chaingate.devnet.tron_node.render import block_json, tx_info_json, tx_json
from chaingate.errors import ChainDataError

log = structlog.get_logger(__name__)
CHAIN: web.AppKey[Chain] = web.AppKey("chain", Chain)
BLOCK_LIMIT = 100  # java-tron's cap on getblockbylimitnext ranges
Handler = Callable[[Chain, dict[str, Any], bool], Any]

TRC20_ABI = [
    {
        "outputs": [{"type": "bool"}],
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "name": "transfer",
        "stateMutability": "Nonpayable",
        "type": "Function",
    },
    {
        "outputs": [{"type": "uint256"}],
        "constant": True,
        "inputs": [{"name": "who", "type": "address"}],
        "name": "balanceOf",
        "stateMutability": "View",
        "type": "Function",
    },
    {
        "outputs": [{"type": "uint8"}],
        "constant": True,
        "name": "decimals",
        "stateMutability": "View",
        "type": "Function",
    },
    {
        "outputs": [{"type": "string"}],
        "constant": True,
        "name": "symbol",
        "stateMutability": "View",
        "type": "Function",
    },
    {
        "anonymous": False,
        "inputs": [
            {"indexed": True, "name": "from", "type": "address"},
            {"indexed": True, "name": "to", "type": "address"},
            {"name": "value", "type": "uint256"},
        ],
        "name": "Transfer",
        "type": "Event",
    },
]


def _visible(body: dict[str, Any]) -> bool:
    return bool(body.get("visible", False))


def _addr_out(raw: bytes, visible: bool) -> str:
    return to_base58(raw) if visible else raw.hex()


# --- /wallet and /walletsolidity ------------------------------------------------------------
def now_block(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    return block_json(chain.solid if solid else chain.head, _visible(body))


def block_by_num(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    block = chain.block(int(body.get("num", -1)), solid_only=solid)
    return block_json(block, _visible(body)) if block else {}


def block_by_id(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    value = str(body.get("value", ""))
    block = chain.block(int(value[:16], 16), solid_only=solid) if len(value) == 64 else None
    return block_json(block, _visible(body)) if block and block.block_id == value else {}


def block_range(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    start, end = int(body.get("startNum", 0)), int(body.get("endNum", 0))
    if end <= start or end - start > BLOCK_LIMIT:
        return {}
    blocks = [chain.block(n, solid_only=solid) for n in range(start, end)]
    found = [block_json(b, _visible(body)) for b in blocks if b is not None]
    return {"block": found} if found else {}


def tx_by_id(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    value = str(body.get("value", "")).lower()
    found = chain.tx(value, solid_only=solid)
    if found:
        return tx_json(found[0], _visible(body))
    pending = next((t for t in chain.pool if t.txid == value), None)
    return tx_json(pending, _visible(body), mined=False) if pending and not solid else {}


def tx_info_by_id(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    found = chain.tx(str(body.get("value", "")), solid_only=solid)
    return tx_info_json(*found) if found else {}


def tx_info_by_block(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    block = chain.block(int(body.get("num", -1)), solid_only=solid)
    return [tx_info_json(tx, block) for tx in block.txs] if block else []


def get_account(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    address = any_to_raw(str(body["address"]))
    state = (chain.solid if solid else chain.head).state
    if not state.exists(address):
        return {}
    out: dict[str, Any] = {
        "address": _addr_out(address, _visible(body)),
        "create_time": chain.blocks[0].timestamp,
    }
    if state.trx[address]:
        out["balance"] = state.trx[address]
    assets = state.trc10.get(address, {})
    if assets:
        out["assetV2"] = [{"key": k, "value": v} for k, v in sorted(assets.items())]
    return out


def node_info(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    return {
        "block": f"Num:{chain.head.number},ID:{chain.head.block_id}",
        "solidityBlock": f"Num:{chain.solid.number},ID:{chain.solid.block_id}",
        "configNodeInfo": {"codeVersion": "devnet", "p2pVersion": "devnet"},
        "activeConnectCount": 0,
    }


def chain_parameters(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    return {"chainParameter": chain.params.chain_parameters()}


def get_contract(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    address = any_to_raw(str(body["value"]))
    token = chain.head.state.trc20.get(address)
    if token is None:
        return {}
    visible = _visible(body)
    return {
        "origin_address": _addr_out(token.owner, visible),
        "contract_address": _addr_out(address, visible),
        "abi": {"entrys": TRC20_ABI},
        "bytecode": "",
        "consume_user_resource_percent": 100,
        "name": token.symbol,
        "origin_energy_limit": 10_000_000,
        "code_hash": "",
    }


def get_contract_info(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    contract = get_contract(chain, body, solid)
    return {"runtimecode": "", "smart_contract": contract} if contract else {}


def trigger_constant(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    contract = any_to_raw(str(body["contract_address"]))
    selector = str(body.get("function_selector") or str(body.get("data", ""))[:8])
    parameter = str(body.get("parameter") or str(body.get("data", ""))[8:])
    state = chain.head.state
    if selector in ("transfer(address,uint256)", lg.SEL_TRANSFER) and contract in state.trc20:
        return _dry_run_transfer(state, state.trc20[contract], body, parameter)
    word = lg.constant_call(state, contract, selector, parameter)
    if word is None:
        return {
            "result": {
                "code": "CONTRACT_VALIDATE_ERROR",
                "message": "No contract or not a valid smart contract",
            }
        }
    return {
        "result": {"result": True},
        "energy_used": lg.CONSTANT_ENERGY,
        "constant_result": [word],
    }


def _dry_run_transfer(
    state: lg.Ledger, token: lg.Trc20, body: dict[str, Any], parameter: str
) -> dict[str, Any]:
    """A ``transfer`` run without a transaction: the energy it would use, on the head state.

    It never sees the devnet's extra-energy switch: that is the point of the switch."""
    owner = any_to_raw(str(body["owner_address"]))
    energy = lg.transfer_energy(state, token, owner, lg.SEL_TRANSFER + parameter)
    if energy is None:
        return {
            "result": {
                "code": "CONTRACT_EXE_ERROR",
                "message": b"REVERT opcode executed".hex(),
            },
            "energy_used": costs.TRC20_ENERGY_HOLDER // 2,
            "constant_result": [""],
        }
    return {"result": {"result": True}, "energy_used": energy, "constant_result": [f"{1:064x}"]}


def estimate_energy(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    contract = any_to_raw(str(body["contract_address"]))
    token = chain.head.state.trc20.get(contract)
    parameter = str(body.get("parameter") or str(body.get("data", ""))[8:])
    energy = None
    if token is not None:
        owner = any_to_raw(str(body["owner_address"]))
        energy = lg.transfer_energy(chain.head.state, token, owner, lg.SEL_TRANSFER + parameter)
    return {"result": {"result": True}, "energy_required": energy or lg.CONSTANT_ENERGY}


def _value(body: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: body[k] for k in keys if k in body}


def create_transaction(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    value = _value(body, ("owner_address", "to_address", "amount"))
    return chain.unsigned("TransferContract", value)


def trigger_smart_contract(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    selector = str(body.get("function_selector", ""))
    data = body.get("data") or (
        (lg.SEL_TRANSFER if selector == "transfer(address,uint256)" else "")
        + str(body.get("parameter", ""))
    )
    value = {**_value(body, ("owner_address", "contract_address", "call_value")), "data": data}
    tx = chain.unsigned("TriggerSmartContract", value, int(body.get("fee_limit", 0)))
    return {"result": {"result": True}, "transaction": tx}


def sign_weight(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    unsigned: dict[str, Any] = {k: body[k] for k in ("raw_data", "signature") if k in body}
    tx = chain.unsigned_from(unsigned)
    owner = any_to_raw(str(tx["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"]))
    out: dict[str, Any] = {
        "result": {"code": "NOT_ENOUGH_PERMISSION"},
        "transaction": {"result": {"result": True}, "transaction": tx},
    }
    if chain.head.state.exists(owner):
        out["permission"] = {
            "type": "Owner",
            "permission_name": "owner",
            "threshold": 1,
            "keys": [{"address": owner.hex(), "weight": 1}],
        }
    return out


def broadcast(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    try:
        tx = chain.accept(body)
    except BroadcastError as exc:
        log.info("broadcast_refused", code=exc.code)
        return {
            "code": exc.code,
            "txid": body.get("txID", ""),
            "message": exc.message.encode().hex(),
        }
    log.info("broadcast_accepted", txid=tx.txid, kind=tx.kind)
    return {"result": True, "txid": tx.txid}


def broadcast_hex(chain: Chain, body: dict[str, Any], solid: bool) -> Any:
    """java-tron's /wallet/broadcasthex: the whole signed ``Transaction`` as protobuf hex."""
    try:
        raw, signatures = decode_transaction(bytes.fromhex(str(body["transaction"])))
        raw_data = raw_data_json(raw)
    except ChainDataError as exc:
        return {"result": False, "code": "OTHER_ERROR", "message": str(exc).encode().hex()}
    answer = broadcast(chain, {"raw_data": raw_data, "signature": signatures}, solid)
    txid = hashlib.sha256(raw).hexdigest()
    return {**answer, "txid": txid, "transaction": tx_json_of(chain, txid)}


def tx_json_of(chain: Chain, txid: str) -> Any:
    pending = next((t for t in chain.pool if t.txid == txid), None)
    return tx_json(pending, mined=False) if pending else {}


WALLET: dict[str, Handler] = {
    "getnowblock": now_block,
    "getblockbynum": block_by_num,
    "getblockbyid": block_by_id,
    "getblockbylimitnext": block_range,
    "gettransactionbyid": tx_by_id,
    "gettransactioninfobyid": tx_info_by_id,
    "gettransactioninfobyblocknum": tx_info_by_block,
    "getaccount": get_account,
}
WALLET_ONLY: dict[str, Handler] = {
    "getnodeinfo": node_info,
    "getchainparameters": chain_parameters,
    "getcontract": get_contract,
    "getcontractinfo": get_contract_info,
    "triggerconstantcontract": trigger_constant,
    "estimateenergy": estimate_energy,
    "createtransaction": create_transaction,
    "triggersmartcontract": trigger_smart_contract,
    "getsignweight": sign_weight,
    "broadcasttransaction": broadcast,
    "broadcasthex": broadcast_hex,
}


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return dict(request.query)
    parsed = json.loads(text)
    return parsed if isinstance(parsed, dict) else {}


def _route(handler: Handler, solid: bool) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        try:
            body = await _body(request)
            result = handler(request.app[CHAIN], body, solid)
        except (KeyError, ValueError, TypeError) as exc:
            # java-tron answers bad input with 200 and an "Error" member
            result = {"Error": f"class {type(exc).__name__} : {exc}"}
        return web.json_response(result)

    return serve


# --- /devnet controls -----------------------------------------------------------------------
def ctl_mine(chain: Chain, body: dict[str, Any]) -> Any:
    blocks = chain.mine(int(body.get("count", 1)))
    return {"head": chain.head.number, "blocks": [b.block_id for b in blocks]}


def ctl_fork(chain: Chain, body: dict[str, Any]) -> Any:
    chain.fork(int(body["depth"]))
    log.info("devnet_fork", depth=int(body["depth"]), head=chain.head.number)
    return {"head": chain.head.number, "blockID": chain.head.block_id}


def ctl_fail_next(chain: Chain, body: dict[str, Any]) -> Any:
    mode = str(body["mode"])
    if mode not in ("REVERT", "OUT_OF_ENERGY"):
        raise ValueError("mode must be REVERT or OUT_OF_ENERGY")
    chain.fail_next = mode
    return {"fail_next": mode}


def ctl_fund(chain: Chain, body: dict[str, Any]) -> Any:
    amount = int(body["amount_sun"])
    if amount <= 0:
        raise ValueError("amount_sun must be positive")
    chain.fund(any_to_raw(str(body["address"])), amount)
    return {"address": to_base58(any_to_raw(str(body["address"]))), "amount_sun": amount}


def ctl_deploy_trc20(chain: Chain, body: dict[str, Any]) -> Any:
    address = chain.deploy_trc20(
        str(body["symbol"]),
        int(body["decimals"]),
        any_to_raw(str(body["owner"])),
        int(body["supply"]),
    )
    return {"contract": to_base58(address), "contract_hex": address.hex()}


def ctl_issue_trc10(chain: Chain, body: dict[str, Any]) -> Any:
    token_id = chain.issue_trc10(
        str(body["name"]), any_to_raw(str(body["owner"])), int(body["supply"])
    )
    return {"token_id": token_id}


def ctl_solidify_lag(chain: Chain, body: dict[str, Any]) -> Any:
    blocks = int(body["blocks"])
    if blocks < 0:
        raise ValueError("blocks must be >= 0")
    chain.solidify_lag = blocks
    return {"solidify_lag": blocks, "solid": chain.solid.number}


RESOURCE_PARAMS = (
    "energy_fee",
    "transaction_fee",
    "free_net_limit",
    "create_account_fee",
    "create_new_account_fee",
    "max_fee_limit",
    "extra_energy",
)


def ctl_resources(chain: Chain, body: dict[str, Any]) -> Any:
    """Set chain parameters and the extra-energy switch; answers all of them."""
    for key, value in body.items():
        if key not in RESOURCE_PARAMS:
            raise ValueError(f"unknown resource parameter {key!r}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{key} must be an integer >= 0")
        if key == "energy_fee" and value == 0:
            raise ValueError("energy_fee must be positive")
        setattr(chain.params, key, value)
    log.info("devnet_resources", **{k: getattr(chain.params, k) for k in RESOURCE_PARAMS})
    return {k: getattr(chain.params, k) for k in RESOURCE_PARAMS}


CONTROLS: dict[str, Callable[[Chain, dict[str, Any]], Any]] = {
    "mine": ctl_mine,
    "fork": ctl_fork,
    "fail-next": ctl_fail_next,
    "fund": ctl_fund,
    "deploy-trc20": ctl_deploy_trc20,
    "issue-trc10": ctl_issue_trc10,
    "solidify-lag": ctl_solidify_lag,
    "resources": ctl_resources,
}


def _control(
    handler: Callable[[Chain, dict[str, Any]], Any],
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        try:
            result = handler(request.app[CHAIN], await _body(request))
        except (KeyError, ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(result)

    return serve


def create_app(chain: Chain, auto_mine: float | None = None) -> web.Application:
    app = web.Application()
    app[CHAIN] = chain
    for name, handler in WALLET.items():
        for prefix, solid in (("wallet", False), ("walletsolidity", True)):
            app.router.add_route("*", f"/{prefix}/{name}", _route(handler, solid))
    for name, handler in WALLET_ONLY.items():
        app.router.add_route("*", f"/wallet/{name}", _route(handler, False))
    for name, ctl in CONTROLS.items():
        app.router.add_post(f"/devnet/{name}", _control(ctl))
    if auto_mine:
        app.cleanup_ctx.append(_auto_miner(auto_mine))
    return app


def _auto_miner(
    interval: float,
) -> Callable[[web.Application], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def run(app: web.Application) -> AsyncIterator[None]:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval)
                app[CHAIN].mine(1)

        task = asyncio.create_task(loop())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run
