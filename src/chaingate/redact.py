"""Endpoint URLs are secrets: a hosted endpoint carries its API key in the path, the query or the
userinfo. These helpers keep the part an operator needs (which host) and drop the rest."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

# Anything that looks like an absolute URL with a scheme; stops at whitespace and the characters
# that usually close a URL inside log text or a repr (quotes, brackets, angle brackets).
_URL_IN_TEXT = re.compile(r"""[A-Za-z][A-Za-z0-9+.\-]*://[^\s'"<>\[\](){}]+""")


def redact_url(url: str) -> str:
    """``scheme://host[:port]``, plus ``/***`` when the URL had a path, query or userinfo."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<unparseable url>"
    if not parts.scheme or not host:
        return "<unparseable url>"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    has_secret_part = bool(
        parts.path.strip("/") or parts.query or parts.fragment or "@" in parts.netloc
    )
    return f"{parts.scheme}://{netloc}" + ("/***" if has_secret_part else "")


def redact_text(text: str) -> str:
    """``text`` with every URL inside it replaced by its redacted form."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
