"""Plain typed domain objects: networks, assets, transfers, deposits. No I/O here."""

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
    "Asset",
    "AssetStandard",
    "BlockRef",
    "ChainHead",
    "DepositStatus",
    "Endpoint",
    "Network",
    "NetworkKind",
    "RejectReason",
    "ScanResult",
    "Transfer",
    "WithdrawalLimits",
]
