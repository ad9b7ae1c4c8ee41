"""The service's Prometheus collectors, created on one registry in ``main`` (none at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class WatcherMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.head = Gauge(
            "chaingate_chain_head", "Best head reported by the endpoints", ["network"], registry=r
        )
        self.cursor = Gauge(
            "chaingate_watcher_cursor", "Last block fully processed", ["network"], registry=r
        )
        self.blocks = Counter("chaingate_blocks_scanned", "Blocks scanned", ["network"], registry=r)
        self.deposits = Counter(
            "chaingate_deposits",
            "Deposits recorded, by first status",
            ["network", "status"],
            registry=r,
        )
        self.credits = Counter("chaingate_credits", "Deposits credited", ["network"], registry=r)
        self.reorgs = Counter("chaingate_reorgs", "Reorgs handled", ["network"], registry=r)
        self.reversals = Counter(
            "chaingate_reversals", "Credited deposits reversed", ["network"], registry=r
        )
        self.alerts = Counter("chaingate_alerts", "Alerts raised", ["kind", "network"], registry=r)
        # Spam and address-poisoning tokens alert once per contract and day; this counts them all.
        self.unlisted_tokens = Counter(
            "chaingate_unlisted_token_transfers",
            "Transfers of unlisted token contracts to deposit addresses (rejected)",
            ["network"],
            registry=r,
        )
        self.step_errors = Counter(
            "chaingate_watcher_step_errors",
            "Watcher steps that failed",
            ["network", "error"],
            registry=r,
        )
        self.leader_epoch = Gauge(
            "chaingate_watcher_leader_epoch",
            "Lease epoch this instance leads the network's watcher with (0: standby)",
            ["network"],
            registry=r,
        )
        self.deposed = Counter(
            "chaingate_watcher_deposed",
            "Times this instance's watcher lost its lease (a write was fenced out)",
            ["network"],
            registry=r,
        )


class ReconcileMetrics:
    """Balance reconciliation (watcher/reconcile.py), per network."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.checked = Counter(
            "chaingate_reconcile_addresses_checked",
            "Deposit addresses whose balance was compared with their recorded deposits",
            ["network"],
            registry=r,
        )
        self.mismatches = Counter(
            "chaingate_reconcile_mismatches",
            "New balance mismatches alerted (unexplained_balance, balance_shortfall)",
            ["network", "kind"],
            registry=r,
        )
        self.round_errors = Counter(
            "chaingate_reconcile_round_errors",
            "Reconciliation rounds that failed (retried next round)",
            ["network", "error"],
            registry=r,
        )
        self.height = Gauge(
            "chaingate_reconcile_height",
            "Block at which balances were last reconciled",
            ["network"],
            registry=r,
        )
