"""Local devnet: real nodes started, checked and stopped by the project (SPEC section 11).

``manager.up/down/status`` drive the components; ``testing.running_devnet`` wraps them for
pytest session fixtures. Importing this package starts nothing.
"""

from __future__ import annotations

from chaingate.devnet.config import COMPONENTS, DevnetConfig, DevnetError

__all__ = ["COMPONENTS", "DevnetConfig", "DevnetError"]
