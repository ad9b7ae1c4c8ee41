"""Plain typed domain objects: networks, assets, transfers, deposits. No I/O here."""

from chaingate.domain.alerts import AlertKind, AlertSeverity, NewAlert
from chaingate.domain.deposits import AddressRow, DepositInput
from chaingate.domain.models import (
    BlockRef,
    ChainHead,
    DepositStatus,
    RejectReason,
    ScanResult,
    Transfer,
)
from chaingate.domain.network import (
    Asset,
    AssetStandard,
    Endpoint,
    Network,
    NetworkKind,
    WithdrawalLimits,
)

__all__ = [
    "AddressRow",
    "AlertKind",
    "AlertSeverity",
    "Asset",
    "AssetStandard",
    "BlockRef",
    "ChainHead",
    "DepositInput",
    "DepositStatus",
    "Endpoint",
    "Network",
    "NetworkKind",
    "NewAlert",
    "RejectReason",
    "ScanResult",
    "Transfer",
    "WithdrawalLimits",
]
