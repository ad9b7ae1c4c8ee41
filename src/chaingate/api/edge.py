"""Parsing at the edge (SPEC section 12): every hostile input becomes a clear 4xx, never a 500.

Each check here closes a way a request once reached a plain-text 500: bytes that are not UTF-8,
JSON nested past the parser's recursion limit, integers past Python's digit limit, an unknown
charset, Unicode digits (``"²".isdigit()`` is true, ``int("²")`` fails), ids past int64, and
strings PostgreSQL refuses (NUL, lone surrogates).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from aiohttp import web

from chaingate.api.auth import ApiError
from chaingate.errors import ValidationError

# fullmatch everywhere: ``$`` also matches before a trailing newline ("alice\n" is not "alice").
_USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
_ASCII_INT = re.compile(r"[0-9]{1,19}")
# Every family's txid: EVM 0x + 64 hex, Bitcoin and TRON 64 hex; a little room, nothing else.
_TXID = re.compile(r"(0x)?[0-9A-Fa-f]{16,128}")
_CURSOR = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CURSOR_PREFIX = "d1:"
_INT64_MAX = 2**63 - 1
MAX_JSON_DEPTH = 32
# A JSON integer longer than this is no amount or id we take; refused before int() sees it.
MAX_INT_DIGITS = 100
_JSON_TYPES = ("application/json",)
_UTF8 = ("utf-8", "utf8")


def clean_text(value: str, what: str) -> str:
    """``value`` unless it holds characters the database cannot store or a person cannot see."""
    if "\x00" in value:
        raise ValidationError(f"{what} must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} is not valid UTF-8 text") from None
    return value


def check_request_text(request: web.Request) -> None:
    """Query parameters and path segments: no NUL, valid UTF-8 (before any handler runs)."""
    for name, value in request.query.items():
        clean_text(name, "a query parameter name")
        clean_text(value, f"query parameter {name!r}")
    for name, value in request.match_info.items():
        clean_text(value, f"path segment {name!r}")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"integer longer than {MAX_INT_DIGITS} digits")
    return int(text)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Two parsers may keep different copies of a duplicated key: refuse the ambiguity.
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key[:40]!r}")
        obj[key] = value
    return obj


def _check_tree(value: Any) -> None:
    """Depth and string content of a parsed body, iteratively (no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, "bad_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        children: Iterable[Any]
        if isinstance(item, dict):
            for key in item:
                clean_text(key, "a JSON key")
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            if isinstance(item, str):
                clean_text(item, "a JSON string")
            continue
        stack.extend((child, depth + 1) for child in children)


def _check_content_type(request: web.Request) -> None:
    # No Content-Type at all is taken as JSON (a bare curl); a declared other type is refused.
    if "Content-Type" not in request.headers:
        return
    if request.content_type not in _JSON_TYPES and not request.content_type.endswith("+json"):
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    charset = request.charset
    if charset is not None and charset.lower() not in _UTF8:
        raise ApiError(415, "unsupported_media_type", "JSON bodies must be UTF-8 (charset=utf-8)")


def decode_json(raw: bytes) -> Any:
    """Strict JSON: UTF-8, no NaN/Infinity, no duplicate keys, bounded integers and depth.
    Numbers with a fraction or exponent become ``Decimal`` (never float: no money in floats)."""
    try:
        text = raw.decode("utf-8")
        value = json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_constant=_refuse_constant,
            parse_int=_parse_int,
            parse_float=Decimal,
        )
    except RecursionError:
        raise ApiError(
            400, "bad_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
        ) from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "bad_json", f"not valid JSON: {exc.msg} at {exc.pos}") from None
    except UnicodeDecodeError:
        raise ApiError(400, "bad_json", "request body is not UTF-8") from None
    except ValueError as exc:  # our hooks: duplicate keys, NaN, over-long integers
        raise ApiError(400, "bad_json", f"not acceptable JSON: {exc}") from None
    _check_tree(value)
    return value


async def read_body(request: web.Request, *required: str) -> dict[str, Any]:
    """The JSON object body; each of ``required`` must be a non-empty string."""
    _check_content_type(request)
    try:
        raw = await request.read()  # over client_max_size (after inflating): 413 from aiohttp
    except web.RequestPayloadError:
        # A Content-Encoding (gzip, deflate) whose data does not inflate, or a cut-off body.
        raise ApiError(400, "bad_body", "the request body could not be read or inflated") from None
    body = decode_json(raw)
    if not isinstance(body, dict):
        raise ApiError(400, "bad_json", "request body must be a JSON object")
    for name in required:
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise ValidationError(f"'{name}' is required and must be a non-empty string")
    return body


def user_id_of(value: str) -> str:
    if not _USER_ID.fullmatch(value):
        raise ValidationError("'user_id' must be 1-128 characters of letters, digits and _.:@-")
    return value


def parse_int64(raw: str, what: str, *, minimum: int = 0) -> int:
    """An ASCII decimal within int64 (what a bigint column holds)."""
    if not _ASCII_INT.fullmatch(raw) or not minimum <= int(raw) <= _INT64_MAX:
        raise ValidationError(f"{what} must be an integer from {minimum} to {_INT64_MAX}")
    return int(raw)


def parse_limit(raw: str | None, default: int = 100, maximum: int = 1000) -> int:
    if raw is None:
        return default
    if not _ASCII_INT.fullmatch(raw) or not 1 <= int(raw) <= maximum:
        raise ValidationError(f"'limit' must be an integer from 1 to {maximum}")
    return int(raw)


def txid_of(raw: str) -> str:
    if not _TXID.fullmatch(raw):
        raise ValidationError("'txid' must be a transaction id in hex")
    return raw.lower()  # every family stores txids in lower case


def cursor_of(last_id: int) -> str:
    """An opaque page cursor: clients pass it back as ``after``, never build one."""
    return base64.urlsafe_b64encode(f"{_CURSOR_PREFIX}{last_id}".encode()).decode().rstrip("=")


def cursor_id(raw: str) -> int:
    """The id a cursor from ``cursor_of`` stands for; a 422 for anything else."""
    try:
        if not _CURSOR.fullmatch(raw):
            raise ValueError
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode("ascii")
        if not text.startswith(_CURSOR_PREFIX):
            raise ValueError
        return parse_int64(text.removeprefix(_CURSOR_PREFIX), "cursor", minimum=1)
    except (ValueError, ValidationError):
        raise ValidationError("'after' is not a cursor this API handed out (use 'next')") from None
