"""aiohttp service: the service API, the ops API, /metrics and health."""

from chaingate.api.app import build_app
from chaingate.api.common import ApiContext

__all__ = ["ApiContext", "build_app"]
