"""structlog configuration: JSON in production, readable on a terminal, secrets redacted.

Redaction is a processor, not a habit: every event passes through ``redact_secrets`` whatever the
caller remembered. It hides values of secret-looking keys, URLs (keys live in their paths) and
extended public keys anywhere in a string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from chaingate.redact import redact_text

_SECRET_KEYS = re.compile(
    r"(secret|token|password|passwd|authorization|api_key|dsn|xprv|seed|mnemonic|private)", re.I
)
_XPUB = re.compile(r"\b([xyztuv]pub)[1-9A-HJ-NP-Za-km-z]{100,}")


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _XPUB.sub(r"\1…", redact_text(value))
    if isinstance(value, dict):
        return {
            k: ("***" if _SECRET_KEYS.search(str(k)) else _redact_value(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact_value(v) for v in value]
    return value


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if _SECRET_KEYS.search(key):
            event[key] = "***"
        else:
            event[key] = _redact_value(event[key])
    return event


def configure_logging(fmt: str = "auto", level: str = "info", stream: TextIO | None = None) -> None:
    """Call from ``main`` (again from a command that sends its logs elsewhere, before it logs).

    ``fmt``: json, console, or auto (console on a terminal). ``stream``: where every log line
    goes, the standard library's and Python warnings included (default stderr).
    """
    out = sys.stderr if stream is None else stream
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    # bitcoinlib and web3 log through the standard library; keep them quiet unless asked.
    logging.basicConfig(
        level=logging.WARNING, stream=out, format="%(name)s: %(message)s", force=True
    )
    logging.captureWarnings(True)  # a library's warning is a log line, not terminal output
    for noisy in ("bitcoinlib", "web3", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
