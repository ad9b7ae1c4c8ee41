"""The markdown report: a summary table, one table per measurement, and what the numbers say."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from addressbook_memory import BookResult
from btc_batch import BatchResult
from btc_scan import BtcPass, BtcResult
from checks_cost import ChecksResult, checks_section
from evm_scan import EvmResult
from evm_signing import SigningResult
from head_to_ledger import HeadToLedgerResult, head_to_ledger_section, quantile
from ledger_credits import CreditsResult
from tron_scan import TronResult
from withdrawal_latency import LatencyResult


@dataclass
class Report:
    started: str
    seconds: float
    machine: dict[str, str]
    params: Mapping[str, Any]
    evm: EvmResult | None = None
    evm_mainnet: EvmResult | None = None
    book: BookResult | None = None
    credits: CreditsResult | None = None
    btc: BtcResult | None = None
    tron: TronResult | None = None
    signing: SigningResult | None = None
    btc_batch: BatchResult | None = None
    checks: ChecksResult | None = None
    latency: LatencyResult | None = None
    head: HeadToLedgerResult | None = None
    failures: dict[str, str] = field(default_factory=dict)
    planned: int = 0  # measurements requested (progress lines: "n of planned")
    attempts: int = 0


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _x(value: float) -> str:
    return f"{value:.2f}x"


# --- summary ------------------------------------------------------------------------------------
def _summary_rows(r: Report) -> list[list[str]]:
    rows: list[list[str]] = []
    for e in (r.evm, r.evm_mainnet):
        if e is None:
            continue
        base = e.pass_named("bare fetch (baseline)")
        for p in e.passes[1:]:
            rows.append(
                [
                    f"EVM catch-up, {e.params.label}: {p.name}",
                    f"{_n(p.blocks_per_s, 1)} blocks/s, {_n(e.filled.transactions / p.seconds)} "
                    f"transfers/s, peak RSS {_n(p.memory.peak)} MiB",
                    f"{_n(base.blocks_per_s, 1)} blocks/s (bare fetch: blocks, logs, candidate "
                    "receipts)",
                    f"{_x(p.seconds / base.seconds)} (goal {e.params.goal}x)",
                ]
            )
    if r.book:
        rows.append(
            [
                f"AddressBook, {_n(r.book.addresses)} addresses",
                f"{_n(r.book.retained_mib)} MiB RSS kept, loaded in {r.book.load_seconds:.1f} s",
                f"{_n(r.book.object_mib)} MiB of Python objects",
                "",
            ]
        )
    if r.credits:
        for c in r.credits.passes:
            if c.direct:
                continue
            base_c = r.credits.baseline(c)
            rows.append(
                [
                    f"Credits into the ledger (own process): {c.name}",
                    f"{_n(c.per_s)} credits/s",
                    f"{_n(base_c.per_s)} credits/s (bare POSTs, {c.in_flight} in flight)",
                    _x(base_c.per_s / c.per_s) + (" (goal 1.1x)" if c.in_flight > 1 else ""),
                ]
            )
    scans = (
        ("Bitcoin scan: BitcoinAdapter.scan", r.btc, "bare getblock"),
        ("TRON scan: TronAdapter.scan", r.tron, "bare blocks + tx infos"),
    )
    for label, scanned, bare_words in scans:
        if scanned is not None:
            base_s, scan = scanned.passes
            rows.append(
                [
                    label,
                    f"{_n(scan.tx_per_s)} tx/s",
                    f"{_n(base_s.tx_per_s)} tx/s ({bare_words})",
                    _x(scan.median / base_s.median),
                ]
            )
    if r.signing:
        bare = r.signing.passes[0]
        for sp in r.signing.passes[1:]:
            rows.append(
                [
                    f"EVM withdrawals signed: {sp.name}",
                    f"{_n(sp.per_s)} tx/s",
                    f"{_n(bare.per_s)} signatures/s (bare secp256k1)",
                    _x(bare.per_s / sp.per_s),
                ]
            )
    if r.btc_batch:
        b = r.btc_batch
        rows.append(
            [
                f"Bitcoin batch of {_n(b.outputs)} outputs built + signed (goal < 1 s)",
                f"{b.seconds_one:.3f} s",
                f"{b.size} B, {b.vsize} vB, fee {_n(b.fee)} sat",
                "",
            ]
        )
    if r.latency:
        lat = r.latency
        rows.append(
            [
                "EVM withdrawals: quorum to broadcast",
                f"p50 {lat.p50:.2f} s, p99 {lat.quantile(0.99):.2f} s",
                f"{lat.batches} batches of {lat.outputs_per_batch}",
                "",
            ]
        )
    if r.head:
        h = r.head
        rows.append(
            [
                f"Head to ledger, {h.count} deposits (anvil --block-time 1, poll "
                f"{h.poll_interval} s)",
                f"p50 {quantile(h.to_ledger, 0.5):.3f} s, p99 {quantile(h.to_ledger, 0.99):.3f} s",
                f"goal: p99 < poll + 0.25 s = {h.goal:.2f} s",
                "",
            ]
        )
    for name, error in r.failures.items():
        rows.append([f"{name}: FAILED", error.replace("|", "/")[:120], "", ""])
    return rows


# --- details ------------------------------------------------------------------------------------
def _evm_section(e: EvmResult, number: str) -> list[str]:
    p = e.params
    base = e.pass_named("bare fetch (baseline)")
    rows = [
        [
            x.name,
            f"{x.seconds:.2f}",
            _n(x.blocks_per_s, 1),
            _n(e.filled.transactions / x.seconds),
            _x(x.seconds / base.seconds),
            _n(x.memory.peak),
            _n(x.memory.peak_growth),
            x.note or f"{_n(x.transfers)} deposits found",
        ]
        for x in e.passes
    ]
    header = [
        "pass",
        "seconds",
        "blocks/s",
        "transfers/s",
        "time vs baseline",
        "peak RSS MiB",
        "peak growth MiB",
        "notes",
    ]
    return [
        f"## {number}. EVM catch-up scanning, {p.label} (anvil)",
        "",
        f"{_n(e.filled.blocks)} blocks (#{e.filled.first}..#{e.filled.last}) with {p.per_block} "
        f"transfers each ({_n(e.filled.transactions)} transactions: half DevToken `transfer` "
        f"calls, half ETH); {_n(p.watched)} watched addresses in `deposit_addresses`; "
        f"{_n(e.filled.to_watched)} transfers pay a watched address. Filling took "
        f"{e.fill_seconds:.1f} s; the AddressBook loaded the {_n(p.watched)} addresses in "
        f"{e.address_load_seconds:.2f} s. All passes use the network's EndpointPool; the "
        "watcher sizes its ranges itself (at most `scan_batch` blocks, 4 in flight); "
        "transfers/s counts every on-chain transfer processed.",
        "",
        *_table(header, rows),
        "",
        f"The watcher stored {_n(e.deposits)} deposits and queued {_n(e.credits_queued)} "
        "credits in the outbox (deposits in the last `confirmations` blocks stay confirming). "
        f"Where its time went: {_split_words(e.passes[-1].split, e.passes[-1].seconds)}.",
        "",
    ]


SPLIT_NAMES = {
    "scan": "`adapter.scan`",
    "store": "storing deposits, block hashes and cursor (`_store_range`)",
    "credit": "confirmations and crediting (`_credit`)",
    "rest": "the rest (head, reorg check, address refresh)",
}


def _split_words(split: Mapping[str, float], wall: float) -> str:
    words = ", ".join(
        f"{SPLIT_NAMES.get(k, k)} {v:.1f} s ({v / wall:.0%} of the wall time)"
        for k, v in split.items()
    )
    if sum(split.values()) > wall * 1.01:
        words += (
            " (the phases overlap: up to 4 ranges are scanned while one is stored and credited)"
        )
    return words


def _book_section(b: BookResult) -> list[str]:
    rows = [
        [
            _n(b.addresses),
            f"{b.copy_seconds:.1f}",
            f"{b.load_seconds:.2f}",
            _n(b.retained_mib),
            _n(b.object_mib),
            _n(b.bytes_per_address),
            _n(b.memory.peak_growth),
            _n(b.probes_per_s),
        ]
    ]
    header = [
        "addresses",
        "COPY s",
        "load s",
        "RSS kept MiB",
        "Python objects MiB",
        "RSS bytes/address",
        "peak growth while loading MiB",
        "lookups/s",
    ]
    return [
        f"## 2. Memory with {_n(b.addresses)} watched addresses",
        "",
        "Synthetic EVM match keys COPYed into `deposit_addresses`, loaded by a fresh "
        "`AddressBook.refresh` (what a starting watcher does). RSS kept is measured after the "
        "load; Python objects is `sys.getsizeof` of the set and its keys (20-byte `bytes`, loaded in "
        "pages of 20,000 rows); lookups are half hits, half misses, each from a fresh 0x hex "
        "string decoded to its 20 bytes as `EvmAdapter` does.",
        "",
        *_table(header, rows),
        "",
    ]


def _credits_section(c: CreditsResult) -> list[str]:
    rows = [
        [
            x.name,
            _n(x.count),
            f"{x.seconds:.2f}",
            _n(x.per_s),
            _x(x.seconds / c.baseline(x).seconds),
            _n(x.memory.peak_growth),
        ]
        for x in c.passes
    ]
    header = ["path", "credits", "seconds", "credits/s", "time vs baseline", "peak growth MiB"]
    return [
        "## 3. Credits per second into the ledger",
        "",
        "The reference ledger in its own process, as in production (`python -m "
        "chaingate.ledger.reference`, its own PostgreSQL database). Baseline: signed `POST "
        "/credits` sent with `LedgerClient` and nothing else, with as many in flight as the "
        f"dispatcher row it is held against. Measured: {_n(c.count)} credit rows in "
        "`ledger_outbox` delivered by one `OutboxDispatcher` (claim with lease, send, record "
        "the answer), with up to 8 rows of a claim in flight (the service's setting) and with "
        "one at a time. Goal: the 8-in-flight dispatcher within 1.1x of its baseline.",
        "",
        *_table(header, rows),
        "",
    ]


def _signing_section(g: SigningResult) -> list[str]:
    rows = [[x.name, _n(x.count), f"{x.seconds:.2f}", _n(x.per_s)] for x in g.passes]
    return [
        "## 5. EVM withdrawal transactions signed per second",
        "",
        "ERC-20 `transfer` transactions at consecutive nonces built by `chains/evm/txbuilder.py` "
        "and signed by `signer/evm.py` (eth-account over eth-keys with coincurve, then the sender "
        "recovered from the signed bytes, as the signer does before storing them). Goal: at "
        "least 500/s on 2 cores. The 2-process pass shares the machine with whatever else runs.",
        "",
        *_table(["path", "transactions", "seconds", "per second"], rows),
        "",
    ]


def _btc_batch_section(b: BatchResult) -> list[str]:
    lib = f"{b.bitcoinlib_seconds:.2f}" if b.bitcoinlib_seconds is not None else "not measured"
    rows = [
        ["build + sign, 1 process (best of 3)", f"{b.seconds_one:.3f}"],
        ["two batches at once, 2 processes (wall)", f"{b.seconds_two:.3f}"],
        [f"bitcoinlib: build {_n(b.bitcoinlib_outputs)} outputs + sign 10 inputs", lib],
    ]
    return [
        f"## 6. A Bitcoin withdrawal batch of {_n(b.outputs)} outputs",
        "",
        "ONE transaction paying 1,000 outputs of the five script types (P2WPKH, P2TR, P2SH, "
        "P2PKH, P2WSH) from a 200-coin hot wallet: `chains/bitcoin/txbuilder.py` selects the "
        "coins and adds change, `signer/bitcoin.py` signs every input (BIP143 over coincurve). "
        f"Goal: under 1 s on 2 cores. The transaction: {b.inputs} inputs, {_n(b.size)} bytes, "
        f"{_n(b.vsize)} vbytes, fee {_n(b.fee)} sat at 10 sat/vB.",
        "",
        *_table(["path", "seconds"], rows),
        "",
    ]


def _latency_section(lat: LatencyResult) -> list[str]:
    rows = [[f"p{round(q * 100)}", f"{lat.quantile(q):.2f}"] for q in (0.0, 0.5, 0.9, 0.99, 1.0)]
    return [
        "## 7. EVM withdrawals: time from quorum to broadcast",
        "",
        f"{lat.batches} batches of {lat.outputs_per_batch} ETH withdrawals, one after another, "
        "each made and approved through the functions the API calls; the clock runs from the "
        "second approval (the quorum) to each transaction's `broadcast_at`. The planner and "
        "broadcaster (one pass per block time, 1 s on the devnet) and the signer (polling every "
        "0.5 s) run with their default intervals on the bench's own anvil, so the figure is "
        "mostly those intervals: plan, sign, send are each picked up on the next pass.",
        "",
        *_table(["quantile", "seconds"], rows),
        "",
    ]


def _median_table(passes: Sequence[BtcPass]) -> list[str]:
    """Passes run several times, each against the first (the baseline): medians and runs."""
    base = passes[0]
    rows = [
        [
            x.name,
            f"{x.median:.2f}",
            ", ".join(f"{s:.2f}" for s in x.seconds),
            _n(x.tx_per_s),
            _x(x.median / base.median),
            _n(x.memory.peak),
            _n(x.memory.peak_growth),
            _n(x.found) if x.found else "",
        ]
        for x in passes
    ]
    header = [
        "pass",
        "median s",
        "runs s",
        "transactions/s",
        "time vs baseline",
        "peak RSS MiB",
        "peak growth MiB",
        "payments found",
    ]
    return _table(header, rows)


def _btc_section(b: BtcResult) -> list[str]:
    p = b.params
    return [
        "## 4. Bitcoin scan (litecoind regtest)",
        "",
        f"{b.filled.blocks} blocks (#{b.filled.first}..#{b.filled.last}) of {_n(p.per_block)} "
        f"transactions each plus the coinbase ({_n(b.filled.transactions)} transactions, 1 input "
        f"and 2 P2WPKH outputs each); {_n(b.filled.to_watched)} pay one of {_n(p.watched)} "
        f"watched scripts. Filling took {b.fill_seconds:.1f} s. Each pass ran {p.repeats} "
        "times; the median is used.",
        "",
        *_median_table(b.passes),
        "",
    ]


def _tron_section(t: TronResult) -> list[str]:
    p, f = t.params, t.filled
    return [
        "## 4b. TRON scan (the project's TRON devnet)",
        "",
        f"{f.blocks} blocks (#{f.first}..#{f.last}) of {_n(p.per_block)} signed transfers each "
        f"({_n(f.transactions)} transactions: {_n(f.transactions - f.trc20)} TRX "
        f"`TransferContract`, {_n(f.trc20)} USDT `transfer` calls); {_n(f.to_watched)} pay one "
        f"of {_n(p.watched)} watched addresses. Filling took {t.fill_seconds:.1f} s. Ranges of "
        "the network's `scan_batch` blocks, one after another; the baseline makes the calls the "
        "adapter makes (`getblockbylimitnext` by 100 blocks, then `gettransactioninfobyblocknum` "
        "for each block holding a contract call) without checking or decoding anything; the "
        "adapter recomputes every blockID and txID, decodes the raw bytes and matches every "
        f"recipient. Each pass ran {p.repeats} times; the median is used.",
        "",
        *_median_table(t.passes),
        "",
    ]


# --- interpretation -----------------------------------------------------------------------------
def _interpretation(r: Report) -> list[str]:
    lines = ["## What the numbers say", ""]
    for e in (r.evm, r.evm_mainnet):
        if e is not None:
            lines += _evm_words(e)
    if r.book:
        b = r.book
        lines.append(
            f"- {_n(b.addresses)} watched addresses cost about {_n(b.retained_mib)} MiB of RSS in the "
            f"watcher ({_n(b.object_mib)} MiB of it the set and its 20-byte keys), with a peak "
            f"{_n(b.memory.peak_growth)} MiB above the start while it loads in pages of 20,000 "
            f"rows. Loading takes {b.load_seconds:.1f} s, once per watcher start, then only new "
            "rows are read."
        )
    if r.credits:
        lines.append(_credit_words(r.credits))
    if r.btc:
        base_b, scan = r.btc.passes
        lines.append(
            f"- Bitcoin: the adapter scans {_n(scan.tx_per_s)} tx/s against {_n(base_b.tx_per_s)} "
            f"tx/s for the bare verbose-block fetch ({_x(scan.median / base_b.median)} the time); "
            "the difference is the block checks (header hash, merkle root over every txid) and "
            "the per-output script lookup. litecoind's JSON encoding of verbose blocks bounds "
            "both."
        )
    return [*lines, ""]


def _credit_words(c: CreditsResult) -> str:
    words = "- Credits (the reference ledger in its own process):"
    for p in c.passes:
        if p.direct:
            continue
        base = c.baseline(p)
        words += (
            f" {p.in_flight} in flight, the dispatcher delivers {_n(p.per_s)} credits/s against "
            f"{_n(base.per_s)}/s for bare signed POSTs ({_x(p.seconds / base.seconds)} the "
            "time);"
        )
    return words.rstrip(";") + (
        ". The rows of one claim never depend on each other (a reversal is claimed only after "
        "its credit was delivered), so the dispatcher sends them at once."
    )


def _evm_words(e: EvmResult) -> list[str]:
    base = e.pass_named("bare fetch (baseline)")
    watcher = e.passes[-1]
    ratio = watcher.seconds / base.seconds
    goal = e.params.goal
    verdict = "meets" if ratio <= goal else f"misses by {(ratio / goal - 1) * 100:.0f}%"
    words = (
        f"- EVM {e.params.label}: the full watcher takes {_x(ratio)} the time of the bare "
        f"fetch of everything it must read, so it {verdict} the {goal}x goal."
    )
    if e.params.adapter_pass:
        scan = e.pass_named("EvmAdapter.scan")
        words += (
            f" `EvmAdapter.scan` alone, one range after another, takes "
            f"{_x(scan.seconds / base.seconds)}."
        )
    words += (
        f" In the watcher, {_split_words(watcher.split, watcher.seconds)}. Peak RSS during the "
        f"watcher pass was {_n(watcher.memory.peak)} MiB ({_n(watcher.memory.peak_growth)} MiB "
        "above its start)"
    )
    rss_goal = e.params.rss_goal_mib
    if rss_goal is not None:
        met = "within" if watcher.memory.peak <= rss_goal else "over"
        words += f", {met} the {_n(rss_goal)} MiB goal"
    return [words + "."]


def render(r: Report) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`bench/run.py`); every number below comes from one run, with "
        "its baselines measured in the same run. Numbers are reported, never asserted.",
        "",
        f"Run: {r.started}, {r.seconds / 60:.1f} minutes in all.",
        "",
        "Machine: " + "; ".join(f"{k} {v}" for k, v in r.machine.items()) + ".",
        "",
        "Parameters: " + ", ".join(f"`{k}={v}`" for k, v in r.params.items()) + ".",
        "",
        "## Summary",
        "",
        *_table(
            ["measurement", "result", "baseline (same run)", "time vs baseline"], _summary_rows(r)
        ),
        "",
    ]
    if r.evm:
        lines += _evm_section(r.evm, "1")
    if r.evm_mainnet:
        lines += _evm_section(r.evm_mainnet, "1b")
    if r.book:
        lines += _book_section(r.book)
    if r.credits:
        lines += _credits_section(r.credits)
    if r.btc:
        lines += _btc_section(r.btc)
    if r.tron:
        lines += _tron_section(r.tron)
    if r.signing:
        lines += _signing_section(r.signing)
    if r.btc_batch:
        lines += _btc_batch_section(r.btc_batch)
    if r.checks:
        lines += checks_section(r.checks)
    if r.latency:
        lines += _latency_section(r.latency)
    if r.head:
        lines += head_to_ledger_section(r.head)
    lines += _interpretation(r)
    return "\n".join(lines)
