"""aiohttp service: the service API, the ops API, /metrics and health."""

from chaingate.api.app import ApiContext, build_app

__all__ = ["ApiContext", "build_app"]
