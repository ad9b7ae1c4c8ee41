"""Hostile requests (SPEC section 12) over real HTTP, as raw bytes on a socket: every route of the
app answers each one with a JSON 4xx (never a 500 or a traceback), changes nothing, and the
gateway keeps serving. The table iterates ``app.router.routes()``, so routes added later are
attacked too without anyone remembering to list them."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import sys
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiohttp.web_runner import BaseRunner

from chaingate.api import ApiContext, build_app
from chaingate.api.auth import require
from chaingate.api.common import ctx_of, json_response, read_body
from chaingate.api.server import api_runner
from chaingate.chains.registry import address_codec
from chaingate.devnet.config import free_ports
from chaingate.settings import Principal
from harness import devnet_network, until

ALL_ROLES = "test-all-roles-token-0001"
TOKENS = {
    ALL_ROLES: Principal("root", frozenset({"service", "viewer", "ops_maker", "ops_approver"}))
}
GOOD_AUTH = f"Authorization: Bearer {ALL_ROLES}".encode()


@dataclass(frozen=True)
class Raw:
    """One raw HTTP exchange: what we sent, what came back."""

    status: int
    headers: dict[str, str]
    body: bytes


async def raw_http(port: int, request: bytes) -> Raw:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout=20)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Raw(int(lines[0].split()[1]), headers, body)


def build(
    method: str,
    target: bytes,
    *,
    headers: tuple[bytes, ...] = (GOOD_AUTH,),
    body: bytes | None = None,
    content_type: bytes | None = b"application/json",
) -> bytes:
    lines = [method.encode() + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1", *headers]
    if body is not None:
        if content_type is not None:
            lines.append(b"Content-Type: " + content_type)
        lines.append(b"Content-Length: " + str(len(body)).encode())
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


def concrete(path: str, value: str = "1") -> str:
    return re.sub(r"\{[^}]+\}", value, path)


# --- the hostile table ------------------------------------------------------------------------
# Each case: name -> (method, path template) -> raw request bytes.
Case = Callable[[str, str], bytes]
_nested = b"[" * 30_000 + b"]" * 30_000
_deep_objects = b'{"a":' * 40 + b"1" + b"}" * 40
_JSON_BODIES: dict[str, bytes] = {
    "nested_arrays_past_recursion": _nested,
    "nested_objects_past_depth": _deep_objects,
    "integer_past_digit_limit": b'{"user_id": ' + b"9" * 5000 + b', "network": "x"}',
    "integer_long_but_parsable": b'{"amount": ' + b"9" * 200 + b"}",
    "float_overflow": b'{"amount": 1e999999}',
    "nan": b'{"amount": NaN}',
    "infinity": b'{"amount": -Infinity}',
    "duplicate_keys": b'{"user_id": "a", "user_id": "b", "network": "ethereum-devnet"}',
    "list_body": b'[{"user_id": "a", "network": "ethereum-devnet"}]',
    "string_body": b'"hello"',
    "empty_body": b"",
    "not_utf8": b'{"user_id": "\xff\xfe", "network": "ethereum-devnet"}',
    "nul_in_string": b'{"user_id": "a\\u0000b", "network": "ethereum-devnet", "reason": "x\\u0000"}',
    "nul_in_key": b'{"user_id\\u0000": "a", "network": "ethereum-devnet"}',
    "lone_surrogate": b'{"user_id": "a", "network": "ethereum-devnet", "reason": "\\ud800"}',
    "newline_user": b'{"user_id": "alice\\n", "network": "ethereum-devnet"}',
    "huge_body": b'{"pad": "' + b"x" * 70_000 + b'"}',
}
_CONTENT_TYPES: dict[str, bytes] = {
    "unknown_charset": b"application/json; charset=klingon",
    "other_charset": b"application/json; charset=latin-1",
    "text_plain": b"text/plain",
    "form": b"application/x-www-form-urlencoded",
    "garbage_content_type": b"\xff/\xfe; charset=\xff",
    "utf16_charset": b"application/json; charset=utf-16",
    "utf32_charset": b"application/json; charset=utf-32",
    "quoted_charset": b'application/json; charset="utf-8"',
    "charset_twice": b"application/json; charset=utf-8; charset=utf-16",
    "huge_content_type": b"application/json; x=" + b"y" * 7000,
}
# Compressed bodies: aiohttp inflates them, so the size limit must hold after inflation.
_ENCODED: dict[str, tuple[bytes, bytes]] = {
    "gzip_bomb": (b"Content-Encoding: gzip", gzip.compress(b'{"a": "' + b"x" * 20_000_000)),
    "gzip_garbage": (b"Content-Encoding: gzip", b"\x1f\x8b not gzip at all"),
    "deflate_small": (b"Content-Encoding: deflate", zlib.compress(b'{"user_id": "z"}')),
    "unknown_encoding": (b"Content-Encoding: klingon", b"{}"),
}
_AUTH: dict[str, bytes] = {
    "auth_bytes_ff": b"Authorization: Bearer \xff\xfe\xfd" + ALL_ROLES.encode(),
    "auth_utf8_non_ascii": "Authorization: Bearer tökën-ünïcode-0001".encode(),
    "auth_control_chars": b"Authorization: Bearer \x01\x02" + ALL_ROLES.encode(),
    "auth_scheme_bytes": b"Authorization: \xff\xfe " + ALL_ROLES.encode(),
    "auth_huge": b"Authorization: Bearer " + b"a" * 7000,
    "auth_past_header_limit": b"Authorization: Bearer " + b"a" * 9000,
    "auth_two_tokens": GOOD_AUTH + b", Bearer other",
    "header_injection": GOOD_AUTH + b"\r\nX-Injected: 1\rSet-Cookie: a=b",
    "auth_lowercase_scheme": b"Authorization: bearer " + ALL_ROLES.encode(),
}
_QUERIES: dict[str, bytes] = {
    "limit_superscript": b"limit=" + quote("²").encode(),
    "limit_circled": b"limit=" + quote("①").encode(),
    "limit_arabic_indic": b"limit=" + quote("٣").encode(),
    "limit_raw_bytes": "limit=²".encode(),  # unencoded: the HTTP parser refuses it
    "limit_thousands_of_digits": b"limit=" + b"9" * 5000,
    "limit_negative": b"limit=-1",
    "limit_zero": b"limit=0",
    "limit_fullwidth": b"limit=" + quote("\uff11\uff10").encode(),
    "user_newline": b"user_id=alice%0A",
    "user_nul": b"user_id=a%00b",
    "txid_nul": b"txid=ab%00cd",
    "bad_percent": b"user_id=%ff%fe&network=%c3%28",
    "after_garbage": b"after=%00%ff!!",
    "after_huge": b"after=" + b"A" * 5000,
    "status_nul": b"status=credited%00",
    "limit_hex": b"limit=0x10",
    "limit_arabic_indic_two": b"limit=" + quote("\u0661\u0662").encode(),
    "limit_plus": b"limit=%2B5",
    "limit_underscore": b"limit=1_0",
    "limit_spaces": b"limit=%205%20",
    "limit_float": b"limit=5.0",
    "limit_exponent": b"limit=1e2",
    "limit_twice": b"limit=5&limit=6",
    "after_negative": b"after=-1",
    "after_hex": b"after=0x10",
    "after_arabic_indic": b"after=" + quote("\u0661").encode(),
    "after_beyond_int64": b"after=9223372036854775808",
    "after_base64_garbage": b"after=eyJpZCI6ICJ4In0=",
    "after_empty": b"after=",
    "network_huge": b"network=" + b"n" * 5000,
    "query_huge": b"x=" + b"q" * 9000,
}
_PATH_VALUES: dict[str, str] = {
    "id_superscript": "%C2%B2",
    "id_circled": "%E2%91%A0",
    "id_beyond_int64": "9223372036854775808",
    "id_int64_max": "9223372036854775807",
    "id_thousands_of_digits": "9" * 3000,
    "id_negative": "-1",
    "id_zero": "0",
    "id_nul": "%00",
    "id_bad_utf8": "%ff",
    "id_space": "1%20",
    "id_newline": "1%0A",
    "id_hex": "0x10",
    "id_arabic_indic": "%D9%A1",
    "id_plus": "%2B1",
    "id_underscore": "1_0",
    "id_slash_nul": "1%2F%00",
    "id_dot_dot": "..%2F..%2Fhealthz",
}


def cases(method: str, path: str) -> dict[str, bytes]:
    target = concrete(path).encode()
    out: dict[str, bytes] = {}
    for name, body in _JSON_BODIES.items():
        out[name] = build(method, target, body=body)
    for name, ctype in _CONTENT_TYPES.items():
        out[name] = build(method, target, body=b'{"a": "b"}', content_type=ctype)
    out["no_content_type"] = build(method, target, body=b"{}", content_type=None)
    chunk = b"x" * 35_000
    out["chunked_huge"] = (
        method.encode()
        + b" "
        + target
        + b" HTTP/1.1\r\nHost: x\r\n"
        + GOOD_AUTH
        + b"\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n"
        + (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 3
        + b"0\r\n\r\n"
    )
    out["other_method"] = build("PROPFIND", target, body=b"{}")
    for name, (encoding, body) in _ENCODED.items():
        out[name] = build(method, target, headers=(GOOD_AUTH, encoding), body=body)
    for name, header in _AUTH.items():
        out[name] = build(method, target, headers=(header,), body=b"{}")
    for name, query in _QUERIES.items():
        out[name] = build(method, target + b"?" + query)
    if "{" in path:
        for name, value in _PATH_VALUES.items():
            out[name] = build(method, concrete(path, value).encode(), body=b"{}")
    return out


def all_routes(app: web.Application) -> list[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*"):
            continue
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path, f"route {route} has no path we can attack"
        found.add((route.method, str(path)))
    return sorted(found)


async def store_note(request: web.Request) -> web.Response:
    """Stands in for any later route that stores a caller's string as given (a withdrawal's
    request id, a rejection reason): read_body must have refused what PostgreSQL cannot store."""
    require(request, "ops_maker")
    body = await read_body(request)
    note = body.get("reason", "-")
    await ctx_of(request).db.execute(
        "INSERT INTO audit_log (actor, action, subject) VALUES ('test', 'note', $1)", str(note)
    )
    return json_response({"stored": True}, 201)


class ApiTestServer(TestServer):
    """The service's own runner (api/server.py): protocol errors answered as JSON too."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return api_runner(self.app, **kwargs)


@pytest.fixture
async def server(db: asyncpg.Pool) -> AsyncIterator[tuple[web.Application, int]]:
    networks = {
        n.name: n
        for n in (
            devnet_network("ethereum-devnet", "http://127.0.0.1:1"),
            devnet_network("bitcoin-devnet", "http://127.0.0.1:1"),
        )
    }
    ctx = ApiContext(
        db=db,
        networks=networks,
        codecs={name: address_codec(n) for name, n in networks.items()},
        tokens=TOKENS,
    )
    app = build_app(ctx)
    app.router.add_post("/test/store-note", store_note)
    async with ApiTestServer(app) as srv:
        assert srv.port is not None
        yield app, srv.port


# Broken HTTP framing (control bytes or a header past 8190 bytes) never reaches the app:
# aiohttp's parser refuses it, and api/server.py answers that 400 in the API's JSON shape too,
# quoting nothing of the request. Logged as JSON (see below).
FRAMING = {
    "auth_control_chars",
    "limit_raw_bytes",
    "auth_past_header_limit",
    "header_injection",
    "query_huge",
}


def assert_json_4xx_or_ok(what: str, raw: Raw, *, framing: bool = False) -> None:
    assert raw.status < 500, f"{what}: HTTP {raw.status} {raw.body[:300]!r}"
    assert b"Traceback" not in raw.body, what
    if framing:
        assert raw.status == 400, what
        assert ALL_ROLES.encode() not in raw.body and b"aaaaaaaa" not in raw.body, what
    if raw.status >= 400:
        assert raw.headers.get("content-type", "").startswith("application/json"), (
            f"{what}: {raw.status} {raw.headers.get('content-type')} {raw.body[:200]!r}"
        )
        error = json.loads(raw.body)["error"]
        assert error["code"] and error["message"], what


async def test_every_route_answers_every_hostile_request_with_a_json_4xx(
    server: tuple[web.Application, int], db: asyncpg.Pool
) -> None:
    app, port = server
    routes = all_routes(app)
    assert ("POST", "/v1/deposit-addresses") in routes and len(routes) >= 6
    # The outgoing side is attacked too (intake, batches, approvals, rejection, refused jobs).
    assert {
        ("POST", "/v1/withdrawals"),
        ("GET", "/v1/withdrawals/{withdrawal_id}"),
        ("POST", "/v1/batches"),
        ("POST", "/v1/batches/{batch_id}/approvals"),
        ("POST", "/v1/batches/{batch_id}/rejection"),
        ("GET", "/v1/signer/refused"),
    } <= set(routes), routes
    for method, path in routes:
        for name, request in cases(method, path).items():
            raw = await raw_http(port, request)
            assert_json_4xx_or_ok(f"{method} {path} [{name}]", raw, framing=name in FRAMING)
    # Nothing hostile was stored, and the gateway is still serving.
    assert await db.fetchval("SELECT count(*) FROM deposit_addresses") == 0
    assert await db.fetchval("SELECT count(*) FROM withdrawals") == 0
    assert await db.fetchval("SELECT count(*) FROM batches") == 0
    assert await db.fetchval("SELECT count(*) FROM audit_log WHERE subject <> '-'") == 0
    ok = await raw_http(port, build("GET", b"/healthz"))
    assert ok.status == 200


CLASSES = (
    ("nested_arrays_past_recursion", 400, "bad_json"),
    ("nested_objects_past_depth", 400, "bad_json"),
    ("integer_past_digit_limit", 400, "bad_json"),
    ("nan", 400, "bad_json"),
    ("infinity", 400, "bad_json"),
    ("duplicate_keys", 400, "bad_json"),
    ("list_body", 400, "bad_json"),
    ("not_utf8", 400, "bad_json"),
    ("nul_in_string", 422, "invalid_request"),
    ("nul_in_key", 422, "invalid_request"),
    ("lone_surrogate", 422, "invalid_request"),
    ("newline_user", 422, "invalid_request"),
    ("huge_body", 413, "http_error"),
    ("gzip_bomb", 413, "http_error"),  # 20 MB once inflated
    ("gzip_garbage", 400, "bad_body"),
    ("chunked_huge", 413, "http_error"),
    ("other_method", 405, "http_error"),
    ("unknown_charset", 415, "unsupported_media_type"),
    ("other_charset", 415, "unsupported_media_type"),
    ("text_plain", 415, "unsupported_media_type"),
    ("auth_bytes_ff", 401, "unauthenticated"),
    ("auth_utf8_non_ascii", 401, "unauthenticated"),
    ("auth_scheme_bytes", 401, "unauthenticated"),
)
QUERIES = (
    ("limit=%C2%B2", 422),
    ("limit=%E2%91%A0", 422),
    ("limit=" + "9" * 5000, 422),
    ("limit=1000", 200),
    ("limit=1001", 422),
    ("user_id=alice%0A", 422),
    ("user_id=alice", 200),
)
ALERT_IDS = (
    ("9223372036854775807", 404),  # the largest id a bigint holds: a clean "not found"
    ("9223372036854775808", 422),
    ("%C2%B2", 422),
    ("%E2%91%A0", 422),
    ("9" * 3000, 422),
    ("0", 422),
    ("7", 404),
)


async def test_each_class_gets_its_own_clear_error(
    server: tuple[web.Application, int], db: asyncpg.Pool
) -> None:
    _, port = server
    hostile = cases("POST", "/v1/deposit-addresses")
    for name, status, code in CLASSES:
        raw = await raw_http(port, hostile[name])
        assert raw.status == status, (name, raw.body)
        assert json.loads(raw.body)["error"]["code"] == code, name
    for query, status in QUERIES:  # numbers are ASCII and exact, user ids match in full
        raw = await raw_http(port, build("GET", b"/v1/deposits?" + query.encode()))
        assert raw.status == status, (query, raw.body)
    for name in ("nul_in_string", "nul_in_key", "lone_surrogate"):
        raw = await raw_http(port, cases("POST", "/test/store-note")[name])
        assert raw.status == 422, (name, raw.body)
    for alert_id, status in ALERT_IDS:  # alert ids are int64, ASCII digits
        raw = await raw_http(port, build("POST", f"/v1/alerts/{alert_id}/ack".encode()))
        assert raw.status == status, (alert_id, raw.body)
    assert await db.fetchval("SELECT count(*) FROM deposit_addresses") == 0
    assert await db.fetchval("SELECT count(*) FROM withdrawals") == 0
    assert await db.fetchval("SELECT count(*) FROM batches") == 0


async def test_a_user_id_with_a_trailing_newline_is_not_another_user(
    server: tuple[web.Application, int], db: asyncpg.Pool
) -> None:
    _, port = server
    body = json.dumps({"user_id": "alice", "network": "ethereum-devnet"}).encode()
    assert (await raw_http(port, build("POST", b"/v1/deposit-addresses", body=body))).status == 201
    for hostile in ("alice\n", "alice\r\n", "alice\x00", " alice", "alice\u2028"):
        body = json.dumps({"user_id": hostile, "network": "ethereum-devnet"}).encode()
        raw = await raw_http(port, build("POST", b"/v1/deposit-addresses", body=body))
        assert raw.status == 422, (hostile, raw.body)
    assert await db.fetchval("SELECT array_agg(user_id) FROM deposit_addresses") == ["alice"]


# --- aiohttp's own errors and access log go through structlog (JSON, redacted) ----------------
async def test_server_errors_and_access_log_are_json_lines_without_tracebacks(
    database: str,
) -> None:
    (port,) = free_ports(1)
    env = {
        **os.environ,
        "CHAINGATE_DATABASE_URL": database,
        "CHAINGATE_NETWORKS": "ethereum-devnet",
        "CHAINGATE_LOG_FORMAT": "json",
        "CHAINGATE_API_PORT": str(port),
        "CHAINGATE_API_TOKENS": json.dumps({ALL_ROLES: {"principal": "root", "roles": ["viewer"]}}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chaingate.cli",
        "run",
        "--roles",
        "api",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def up() -> bool:
            try:
                return (await raw_http(port, build("GET", b"/healthz"))).status == 200
            except OSError:
                return False

        await until(up, 60)
        # Broken HTTP framing: aiohttp's protocol layer answers (400) and logs the parser
        # error with its traceback on aiohttp.server.
        bad = await raw_http(port, b"GET / HTTP/1.1\r\nContent-Length: nope\r\n\r\n")
        assert_json_4xx_or_ok("bad content-length", bad, framing=True)
        bad = await raw_http(port, b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_json_4xx_or_ok("NUL in the path", bad, framing=True)
        # The parser quotes the offending header line, bearer token and all, in its error:
        # neither the answer nor the log line carries it.
        for name in ("auth_control_chars", "auth_past_header_limit"):
            bad = await raw_http(port, cases("GET", "/v1/deposits")[name])
            assert_json_4xx_or_ok(name, bad, framing=True)
        hostile = cases("GET", "/v1/deposits")
        for name in ("auth_bytes_ff", "limit_superscript", "after_garbage"):
            assert_json_4xx_or_ok(name, await raw_http(port, hostile[name]))
        assert (await raw_http(port, build("GET", b"/v1/deposits"))).status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    lines = [line for line in err.decode().splitlines() if line.strip()]
    events = []
    for line in lines:
        assert not line.startswith(("Traceback", "  File", "Error handling")), line
        events.append(json.loads(line))  # every line is one JSON event
    names = [e.get("event") for e in events]
    assert "http_request" in names, names
    access = [e for e in events if e.get("event") == "http_request"]
    assert {e["path"] for e in access} >= {"/healthz", "/v1/deposits"}
    assert all(isinstance(e["status"], int) for e in access)
    parser_errors = [e for e in events if e.get("logger") == "aiohttp.server"]
    assert parser_errors, names  # the protocol layer's error arrived, as JSON
    assert ALL_ROLES not in err.decode()  # the bearer token never reaches a log line
    assert proc.returncode == 0, err.decode()[-2000:]
