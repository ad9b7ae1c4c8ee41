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
# A credential inside text: aiohttp's parser errors quote the offending header line, bearer
# token and all, and a traceback carries that message.
_CREDENTIAL = re.compile(r"(?i)(authorization\W{0,4}\s*|bearer\s+)[^\s'\"]+(?:\s+[^\s'\"]+)?")


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return _CREDENTIAL.sub(r"\1***", _XPUB.sub(r"\1…", redact_text(value)))
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

    The standard library's loggers (aiohttp's server errors and access log, bitcoinlib, web3)
    are rendered by the same processors, so their records are JSON and redacted too: a crash
    inside aiohttp is one JSON line with the traceback as a field, never plain text.
    """
    out = sys.stderr if stream is None else stream
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, redact_secrets, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    route_stdlib_logging(renderer, shared, out)
    logging.captureWarnings(True)  # a library's warning is a log line, not terminal output
    # bitcoinlib and web3 log through the standard library; keep them quiet unless asked.
    for noisy in ("bitcoinlib", "web3", "urllib3", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def route_stdlib_logging(
    renderer: Any, shared: list[Any] | None = None, stream: TextIO | None = None
) -> logging.Handler:
    """One root handler that renders stdlib records through structlog (redacted)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                *(shared or [structlog.processors.add_log_level]),
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                redact_secrets,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # aiohttp.access records requests at INFO (see api/accesslog.py for the fields).
    logging.getLogger("aiohttp.access").setLevel(logging.INFO)
    return handler
