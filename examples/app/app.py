"""An Emmett application that caches with Valkey: copy it as a starting point.

The handler is configured from the environment (``VALKEY_URL``, ``VALKEY_PREFIX``, ``VALKEY_EXPIRE``, ... see
docs/configuration.md). Run it next to a server::

    export VALKEY_URL=valkey://127.0.0.1:6379/0
    emmett -a examples/app/app.py serve --port 8000

or with Docker: ``docker compose -f docker/example-compose.yaml up --build`` (see docs/example-app.md).
"""

from __future__ import annotations

import asyncio
import time
import uuid

from emmett import App
from emmett.cache import Cache
from emmett.tools import service
from emmett_valkey import ValkeyCache

app = App(__name__)

# on_error="miss": while Valkey is down, pages are computed instead of served from the cache (each failure is
# counted in stats() and logged as a warning), so the application keeps answering
cache = Cache(valkey=ValkeyCache.from_env(on_error="miss"))

PRODUCTS = {1: {"name": "apple", "price": 1.2}, 2: {"name": "pear", "price": 1.5}}


async def load_products() -> dict[int, dict[str, object]]:
    """Return the catalogue."""
    await asyncio.sleep(0.05)  # stands for a slow query
    return PRODUCTS


@app.route("/")
@service.json
@cache.response(30)  # the whole response, per query string, for 30 s
async def index():
    """Render the product list (computed at most once every 30 s per query string)."""
    products = await cache("products", load_products, 60)  # one value, shared by the routes, for 60 s
    return {"products": products, "rendered_at": time.time(), "render_id": uuid.uuid4().hex}


@app.route("/products/<int:pid>")
@service.json
@cache.response(30)
async def product(pid: int):
    """Render one product."""
    products = await cache("products", load_products, 60)
    return {"product": products.get(pid), "render_id": uuid.uuid4().hex}


@app.route("/health")
@service.json
async def health():
    """Not cached: the process is up, and what its cache handler has counted (hits, misses, errors...)."""
    return {"ok": True, "cache": cache.valkey.stats()}
