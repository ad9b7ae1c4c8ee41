"""docs/openapi.yaml names every route the service app serves, with its methods (SPEC section 12:
the API reference is part of the contract; a route added without it is a documentation bug)."""

from __future__ import annotations

import re
from typing import Any, cast

from chaingate.api import ApiContext, build_app
from chaingate.settings import PROJECT_ROOT

OPENAPI = PROJECT_ROOT / "docs" / "openapi.yaml"
METHODS = {"get", "post", "put", "patch", "delete"}


def documented() -> set[tuple[str, str]]:
    """(METHOD, path) of every operation under ``paths:`` (two-space path keys, four-space
    method keys: the layout of the file)."""
    found: set[tuple[str, str]] = set()
    path = None
    in_paths = False
    for line in OPENAPI.read_text().splitlines():
        if not line.startswith(" "):
            in_paths = line.rstrip() == "paths:"
            continue
        if not in_paths:
            continue
        if m := re.fullmatch(r"  (/\S*):\s*", line):
            path = m.group(1)
        elif (m := re.fullmatch(r"    (\w+):\s*", line)) and m.group(1) in METHODS and path:
            found.add((m.group(1).upper(), path))
    return found


def served() -> set[tuple[str, str]]:
    # No database is touched: building the app only registers its routes.
    ctx = ApiContext(db=cast(Any, None), networks={}, codecs={}, tokens={})
    routes = set()
    for route in build_app(ctx).router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        if route.method in ("HEAD", "*") or not path:
            continue
        routes.add((route.method, str(path)))
    return routes


def test_every_served_route_is_in_the_openapi_document() -> None:
    assert {("GET", "/v1/networks"), ("GET", "/readyz")} <= served()
    assert served() - documented() == set()


def test_the_openapi_document_names_no_route_the_app_does_not_serve() -> None:
    assert documented() - served() == set()
