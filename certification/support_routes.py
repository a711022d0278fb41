"""Helpers of the route-cache tests: an Emmett app of ``cache.response()`` routes, driven on the test's own loop.

:func:`route_app` builds the app on a handler; :func:`asgi_get` sends it one GET through its ASGI interface (the one
granian's asgi workers call) on the running event loop, so two requests can be in flight on one loop, as on a
worker. :class:`Recording` is ``ValkeyCache`` on a real server that also notes which of its cache methods a
request called, and sets an event when a cache read has been issued.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from emmett import App, request, response
from emmett.tools import service
from emmett_core.cache import Cache
from emmett_valkey import ValkeyCache

ROUTE_TTL = 60  # seconds a cached response lives here
VARIED = ("x-tenant",)  # the request header the /varied route's rule keys on


@dataclass(frozen=True)
class Reply:
    """One ASGI response: status, lower-cased headers, body bytes."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Recording(ValkeyCache):
    """ValkeyCache (a real one) that records each call of get/set/aget/aset and signals issued reads."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []
        self.read_issued: asyncio.Event | None = None  # set (on the test's loop) when get or aget is entered

    def _note(self, name: str) -> None:
        self.calls.append(name)
        if name in ("get", "aget") and self.read_issued is not None:
            self.read_issued.set()

    def get(self, key: str) -> Any:
        self._note("get")
        return super().get(key)

    def set(self, key: str, value: Any, duration: Any = "default") -> bool:
        self._note("set")
        return super().set(key, value, duration)

    async def aget(self, key: str) -> Any:
        self._note("aget")
        return await super().aget(key)

    async def aset(self, key: str, value: Any, duration: Any = "default") -> bool:
        self._note("aset")
        return await super().aset(key, value, duration)


def route_app(handler: Any, root_path: str) -> App:
    """An app caching whole responses with *handler*; every computation is counted in ``app.computations``.

    Bodies are deterministic (they say what the request was), so two handlers' entries can be compared as values.
    """
    app = App(__name__, root_path=root_path)
    app.languages = ["en", "it"]
    app.language_default = "en"
    app.language_force_on_url = True  # /it/... is the same route in Italian: the rule's language strategy keys on it
    cache = Cache(valkey=handler)
    counts: Counter[str] = Counter()
    app.computations = counts  # type: ignore[attr-defined]

    def computed(name: str) -> dict[str, Any]:
        counts[name] += 1
        response.headers["x-computed"] = name
        return {"route": name, "query": dict(request.query_params), "tenant": request.headers.get("x-tenant"),
                "language": request.language}

    @app.route("/page")
    @cache.response(ROUTE_TTL)
    @service.json
    async def page() -> dict[str, Any]:
        return computed("page")

    @app.route("/page-sync")
    @cache.response(ROUTE_TTL)
    @service.json
    def page_sync() -> dict[str, Any]:
        return computed("page_sync")

    @app.route("/varied/<int:n>", cache=cache.response(ROUTE_TTL, headers=list(VARIED), hostname=True))
    @service.json
    async def varied(n: int) -> dict[str, Any]:
        return {**computed("varied"), "n": n}

    @app.route("/plain", cache=cache.response(ROUTE_TTL, query_params=False, language=False))
    @service.json
    async def plain() -> dict[str, Any]:
        return computed("plain")

    @app.route("/missing")
    @cache.response(ROUTE_TTL)
    @service.json
    async def missing() -> dict[str, Any]:
        response.status = 404
        return computed("missing")

    @app.route("/free")
    @service.json
    async def free() -> dict[str, Any]:
        return {"free": True}

    return app


async def asgi_get(app: App, path: str, headers: dict[str, str] | None = None) -> Reply:
    """GET *path* (with an optional ``?query``) through the app's ASGI interface, on the running loop."""
    route, _, query = path.partition("?")
    raw_headers = [(b"host", b"testserver"), *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": route, "raw_path": route.encode(),
             "query_string": query.encode(), "root_path": "", "headers": raw_headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80)}
    sent: list[dict[str, Any]] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect while the response is written
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Reply(start["status"], {k.decode().lower(): v.decode() for k, v in start.get("headers", [])}, body)
