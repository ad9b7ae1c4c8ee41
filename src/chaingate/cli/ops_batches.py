"""`chaingate ops batches ...` and `chaingate ops withdrawals ...` over the API (SPEC section 9):
the maker forms a batch, approvers approve the content hash they reviewed, or reject it."""

from __future__ import annotations

import argparse
from typing import Any

from chaingate.cli.tables import Column, amount, col, emit, render, say
from chaingate.ops.client import OpsApiClient

BATCH_COLUMNS = [
    Column("ID", lambda b: f"#{b['id']}", right=True),
    col("STATUS", "status"),
    col("NETWORK", "network"),
    col("ASSET", "asset"),
    Column("OUTPUTS", lambda b: b.get("output_count", len(b.get("outputs") or [])), right=True),
    Column("TOTAL", lambda b: amount(b.get("total"), b.get("decimals")), right=True),
    Column(
        "APPROVALS",
        lambda b: f"{b['quorum']['approvals']}/{b['quorum']['needed']}" if "quorum" in b else "-",
    ),
    col("MAKER", "maker"),
    Column("CONTENT HASH", lambda b: (b.get("content_hash") or "")[:16]),
]
WITHDRAWAL_COLUMNS = [
    Column("ID", lambda w: f"#{w['id']}", right=True),
    col("STATUS", "status"),
    col("NETWORK", "network"),
    col("ASSET", "asset"),
    col("AMOUNT (BASE UNITS)", "amount", right=True),
    col("TO", "to_address"),
    col("USER", "user_id"),
    col("BATCH", "batch_id", right=True),
    col("TXID", "txid"),
]


def batch_of(data: Any) -> dict[str, Any]:
    found: dict[str, Any] = data.get("batch", data) if isinstance(data, dict) else {}
    return found


async def batches_list(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get("/v1/batches", status=args.status or "", network=args.network or "")
    emit(data, args.json, data.get("batches", []), BATCH_COLUMNS, "no batches")
    return 0


def print_batch(batch: dict[str, Any]) -> None:
    print(render([batch], BATCH_COLUMNS))
    print(f"\ncontent hash: {batch.get('content_hash')}")
    print(f"made by:      {batch.get('maker')} at {batch.get('made_at')}")
    fee_cap = batch.get("fee_cap")
    if fee_cap is not None:
        print(f"fee cap:      {fee_cap}")
    outputs = batch.get("outputs") or []
    if outputs:
        print()
        print(render(outputs, [
            Column("WITHDRAWAL", lambda o: f"#{o.get('withdrawal_id')}", right=True),
            col("USER", "user_id"),
            col("TO", "to_address"),
            Column("AMOUNT", lambda o: amount(o.get("amount"), batch.get("decimals")), right=True),
            col("STATUS", "status"),
        ]))  # fmt: skip
    approvals = batch.get("approvals") or []
    if approvals:
        print()
        print(render(approvals, [col("APPROVED BY", "principal"), col("AT", "approved_at")]))


async def batches_show(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get(f"/v1/batches/{args.id}")
    if args.json:
        emit(data, True, [], [], "")
    else:
        print_batch(batch_of(data))
    return 0


async def batches_create(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.post("/v1/batches", {"network": args.network, "asset": args.asset})
    if args.json:
        emit(data, True, [], [], "")
    else:
        batch = batch_of(data)
        print(f"batch {batch['id']} created: review it, then approvers run")
        print(
            f"  chaingate ops batches approve {batch['id']} --content-hash {batch['content_hash']}"
        )
    return 0


async def batches_approve(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.post(f"/v1/batches/{args.id}/approvals", {"content_hash": args.content_hash})
    status = batch_of(data).get("status", "?")
    say(data, args.json, f"batch {args.id} approved; status {status}")
    return 0


async def batches_reject(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.post(
        f"/v1/batches/{args.id}/rejection", {"reason": args.reason, "release": args.release}
    )
    say(data, args.json, f"batch {args.id} rejected")
    return 0


async def withdrawals_list(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get("/v1/withdrawals", status=args.status or "", network=args.network or "")
    emit(data, args.json, data.get("withdrawals", []), WITHDRAWAL_COLUMNS, "no withdrawals")
    return 0


async def withdrawals_show(api: OpsApiClient, args: argparse.Namespace) -> int:
    data = await api.get(f"/v1/withdrawals/{args.id}")
    withdrawal = data.get("withdrawal", data) if isinstance(data, dict) else {}
    emit(data, args.json, [withdrawal], WITHDRAWAL_COLUMNS, "")
    return 0


def register(ops: Any, leaf: Any) -> None:
    b = ops.add_parser("batches", help="withdrawal batches: list, show, create, approve, reject")
    sub = b.add_subparsers(dest="batches_action", required=True)
    ls = leaf(sub, "list", batches_list, "batches, newest first")
    ls.add_argument("--status")
    ls.add_argument("--network")
    show = leaf(sub, "show", batches_show, "a batch: outputs, total, fee cap, hash, approvals")
    show.add_argument("id", type=int)
    create = leaf(sub, "create", batches_create, "batch the pending withdrawals (ops_maker)")
    create.add_argument("--network", required=True)
    create.add_argument("--asset", required=True)
    approve = leaf(sub, "approve", batches_approve, "approve a batch you reviewed (ops_approver)")
    approve.add_argument("id", type=int)
    approve.add_argument(
        "--content-hash",
        required=True,
        help="the content hash you reviewed (`ops batches show`); a changed batch is refused",
    )
    reject = leaf(sub, "reject", batches_reject, "reject a batch, with a reason (ops_approver)")
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True)
    then = reject.add_mutually_exclusive_group(required=True)
    then.add_argument(
        "--release",
        dest="release",
        action="store_true",
        help="its withdrawals go back to pending, to be batched again",
    )
    then.add_argument(
        "--fail",
        dest="release",
        action="store_false",
        help="its withdrawals fail and the ledger hands the funds back",
    )

    w = ops.add_parser("withdrawals", help="withdrawals: list, show")
    wsub = w.add_subparsers(dest="withdrawals_action", required=True)
    wl = leaf(wsub, "list", withdrawals_list, "withdrawals, newest first")
    wl.add_argument("--status", help="e.g. requested (pending), batched, signing")
    wl.add_argument("--network")
    ws = leaf(wsub, "show", withdrawals_show, "one withdrawal: status, txid, fee")
    ws.add_argument("id", type=int)
