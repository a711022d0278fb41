"""The benchmarked application, shaped like examples/app/app.py: ``granian --interface rsgi appbench.app:app``.

Four cache handlers on one Emmett ``Cache``: ``ram`` (Emmett's RamCache), ``redis`` (Emmett's RedisCache, the
baseline), ``valkey`` (ValkeyCache) and ``local`` (ValkeyCache with ``local_cache=True``); the three network ones
talk to ``APPBENCH_HOST``:``APPBENCH_PORT`` (one server, directly or through the delaying proxy) under the key
prefix ``APPBENCH_PREFIX``. Each handler has two routes that answer the same small JSON payload (:func:`payload`):
``/response/<name>`` caches the whole response with ``@cache.<name>.response(60)``, ``/value/<name>`` caches the
payload with ``await cache.<name>(key, compute, 60)``.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

from emmett import App
from emmett.cache import Cache, RamCache, RedisCache
from emmett.tools import service
from emmett_valkey import ValkeyCache

HANDLERS = ("ram", "redis", "valkey", "local")
KINDS = ("response", "value")
TTL = 60


def payload(name: str) -> dict[str, Any]:
    """Return the JSON every route of handler *name* answers (the benchmark checks each body against it)."""
    return {"cache": name, "products": [{"id": 1, "name": "apple", "price": 1.2},
                                        {"id": 2, "name": "pear", "price": 1.5}]}


def _cache() -> Cache:
    host = os.environ.get("APPBENCH_HOST", "127.0.0.1")
    port = int(os.environ.get("APPBENCH_PORT", "6379"))
    prefix = os.environ.get("APPBENCH_PREFIX", "appbench:")
    return Cache(
        ram=RamCache(prefix=f"{prefix}ram:"),
        redis=RedisCache(host=host, port=port, prefix=f"{prefix}redis:"),
        valkey=ValkeyCache(host=host, port=port, prefix=f"{prefix}valkey:"),
        local=ValkeyCache(host=host, port=port, prefix=f"{prefix}local:", local_cache=True),
        default="valkey",
    )


app = App(__name__, root_path=os.environ.get("APPBENCH_ROOT") or os.path.join(tempfile.gettempdir(), "appbench"))
cache = _cache()


def _routes(name: str) -> None:
    handler = getattr(cache, name)

    async def compute() -> dict[str, Any]:
        return payload(name)

    @app.route(f"/response/{name}", name=f"response_{name}")
    @service.json
    @handler.response(TTL)
    async def response_route() -> dict[str, Any]:
        return payload(name)

    @app.route(f"/value/{name}", name=f"value_{name}")
    @service.json
    async def value_route() -> dict[str, Any]:
        value: dict[str, Any] = await handler(f"payload-{name}", compute, TTL)
        return value


for _name in HANDLERS:
    _routes(_name)
