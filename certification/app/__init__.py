"""A real Emmett application whose cache is a handler under certification (ours or the baseline).

``create_app(handler)`` builds it on a given handler (the test client tests); ``certification.app.served:app`` builds
it from ``CERT_*`` environment variables (see :func:`handler_from_env`) for granian. Every route that computes
something counts it in a process-local counter (``app.computations``, also served at ``/counts``) and answers with a
fresh random token, so a test can tell a cache hit (same token, no new computation) from a recomputation. Responses
carry ``x-served-by``: the pid of the process that answered, set by a pipe's ``close`` step, which runs after the
cached content is loaded and is therefore never cached itself.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections import Counter
from collections.abc import Mapping
from typing import Any

from emmett import App, response
from emmett.tools import service
from emmett_core.cache import Cache
from emmett_core.pipeline import Pipe

ROUTE_TTL = 60  # seconds a cached response or value lives, unless a route says otherwise


class ServedBy(Pipe):
    """Stamp every response, cached or not, with the pid of the worker that served it."""

    async def close(self) -> None:
        response.headers["x-served-by"] = str(os.getpid())


def handler_from_env(environ: Mapping[str, str] | None = None) -> Any:
    """Build the cache handler named by ``CERT_HANDLER`` on ``CERT_HOST``:``CERT_PORT`` under ``CERT_PREFIX``.

    ``CERT_CLUSTER=1``: that address is a seed node of a cluster (ValkeyCache only; RedisCache has no cluster client).
    """
    env = os.environ if environ is None else environ
    kind = env.get("CERT_HANDLER", "ValkeyCache")
    kwargs = {"host": env.get("CERT_HOST", "127.0.0.1"), "port": int(env.get("CERT_PORT", "6379")),
              "prefix": env.get("CERT_PREFIX", "cert-app:")}
    if kind == "ValkeyCache":
        from emmett_valkey import ValkeyCache

        return ValkeyCache(**kwargs, cluster=env.get("CERT_CLUSTER", "0") == "1")
    if kind == "RedisCache":
        from emmett_core.cache.handlers import RedisCache

        return RedisCache(**kwargs)
    raise ValueError(f"CERT_HANDLER must be ValkeyCache or RedisCache, got {kind!r}")


def create_app(handler: Any = None, *, root_path: str | None = None, short_ttl: int | None = None) -> App:
    """Return the application, caching with *handler* (default: :func:`handler_from_env`).

    *root_path* is where Emmett creates its folders (default ``CERT_ROOT_PATH`` or a temporary directory, never
    the source tree); *short_ttl* the lifetime of ``/short`` in seconds (default ``CERT_SHORT_TTL`` or 1).
    """
    if handler is None:
        handler = handler_from_env()
    if root_path is None:
        root_path = os.environ.get("CERT_ROOT_PATH") or os.path.join(tempfile.gettempdir(), "emmett-valkey-cert-app")
    if short_ttl is None:
        short_ttl = int(os.environ.get("CERT_SHORT_TTL", "1"))
    app = App(__name__, root_path=root_path)
    app.pipeline = [ServedBy()]
    cache = Cache(valkey=handler)
    counts: Counter[str] = Counter()
    app.computations = counts  # type: ignore[attr-defined]
    app.cache = cache  # type: ignore[attr-defined]

    def computed(name: str) -> dict[str, Any]:
        counts[name] += 1
        return {"token": uuid.uuid4().hex, "computed_by": os.getpid(), "computation": counts[name]}

    # -- whole responses: cache.response() under the route (async and sync), and as the route's cache= argument

    @app.route("/page")
    @cache.response(ROUTE_TTL)
    @service.json
    async def page() -> dict[str, Any]:
        return computed("page")

    @app.route("/page-sync", output="str")
    @cache.response(ROUTE_TTL)
    def page_sync() -> str:
        return json.dumps(computed("page_sync"))

    @app.route("/short", cache=cache.response(short_ttl))
    @service.json
    async def short() -> dict[str, Any]:
        return computed("short")

    # -- values: cache(key, fn, ttl), await cache(key, coro_fn, ttl), and the @cache() decorator, sync and async

    @app.route("/value")
    @service.json
    async def value() -> dict[str, Any]:
        return {"value": cache("value", lambda: computed("value"), ROUTE_TTL), "served_by": os.getpid()}

    @app.route("/avalue")
    @service.json
    async def avalue() -> dict[str, Any]:
        async def compute() -> dict[str, Any]:
            return computed("avalue")

        return {"value": await cache("avalue", compute, ROUTE_TTL), "served_by": os.getpid()}

    @cache(duration=ROUTE_TTL)
    def square(n: int) -> dict[str, Any]:
        return {**computed("square"), "result": n * n}

    @cache(duration=ROUTE_TTL)
    async def cube(n: int) -> dict[str, Any]:
        return {**computed("cube"), "result": n**3}

    @app.route("/square/<int:n>")
    @service.json
    def square_route(n: int) -> dict[str, Any]:
        return {"value": square(n), "served_by": os.getpid()}

    @app.route("/cube/<int:n>")
    @service.json
    async def cube_route(n: int) -> dict[str, Any]:
        return {"value": await cube(n), "served_by": os.getpid()}

    # -- never cached: what this process computed so far

    @app.route("/counts")
    @service.json
    async def counts_route() -> dict[str, Any]:
        return {"pid": os.getpid(), "counts": dict(counts)}

    return app
