"""Integration suite: a real Emmett application caching with each handler, through its test client and under granian.

The application is ``certification/app`` (routes cached with ``cache.response()``, values with ``cache(key, fn)``,
``await cache(key, coro_fn)`` and ``@cache()``). Granian serves it with two worker processes over loopback HTTP, to
show that what one worker cached is what the other serves.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_valkey.keys import glob_escape

from certification.session import ServerInfo
from certification.support import RUN_ID, make_handler, scan_delete
from certification.support_integration import ROUTE_TTL, Reply, ServedApp, create_app, until_two_workers

pytestmark = pytest.mark.integration

SHORT_TTL = 1  # seconds; an int, since RedisCache passes it to SETEX
CLOCK_SLACK = 0.05  # seconds between our monotonic clock and the server's expiry clock


def close_handler(h: Any) -> None:
    if hasattr(h, "close"):
        h.close()
    else:
        h._cache.close()


def stored(raw: valkey.Valkey, prefix: str) -> list[bytes]:
    return sorted(raw.scan_iter(match=glob_escape(prefix) + "*", count=1000))


def assert_expires(fetch: Callable[[], str], ttl: float, deadline: float = 10.0) -> None:
    """The token *fetch* returns stays the same until *ttl* after it was first computed, then changes (polled)."""
    sent0 = time.monotonic()
    first = fetch()
    received0 = time.monotonic()
    # the entry was written at some w in [sent0, received0]: it must be served until w + ttl and never after
    end = received0 + ttl + deadline
    while time.monotonic() < end:
        sent = time.monotonic()
        token = fetch()
        received = time.monotonic()
        if token == first:
            assert sent <= received0 + ttl + CLOCK_SLACK, f"still served {sent - received0:.3f} s after caching"
        else:
            assert received >= sent0 + ttl - CLOCK_SLACK, f"recomputed after {received - sent0:.3f} s < {ttl} s"
            return
        time.sleep(0.02)
    pytest.fail(f"the cached response was still served {deadline} s after its {ttl} s duration")


# -- through Emmett's test client -------------------------------------------------------------------------------


@pytest.fixture
def app(handler: Any, tmp_path: Path) -> Any:
    """The certification app caching with the test's handler."""
    return create_app(handler, root_path=str(tmp_path), short_ttl=SHORT_TTL)


@pytest.mark.parametrize(("path", "name"), [("/page", "page"), ("/page-sync", "page_sync")], ids=["async", "sync"])
def test_route_response_cached(app: Any, raw: valkey.Valkey, key_prefix: str, path: str, name: str) -> None:
    """A route under cache.response(60) is computed once, then served from the server with a 60 s lifetime."""
    client = app.test_client()
    first, second = client.get(path), client.get(path)
    assert first.status == second.status == 200
    assert first.data == second.data
    assert app.computations[name] == 1
    keys = stored(raw, key_prefix)
    assert len(keys) == 1, keys
    assert (ROUTE_TTL - 1) * 1000 < raw.pttl(keys[0]) <= ROUTE_TTL * 1000


def test_route_cache_varies_with_query(app: Any) -> None:
    """cache.response() keeps one entry per query string: ?v=1 and ?v=2 are computed apart, each once."""
    client = app.test_client()
    one, two, one_again = (client.get(p).data for p in ("/page?v=1", "/page?v=2", "/page?v=1"))
    assert one != two and one == one_again
    assert app.computations["page"] == 2


@pytest.mark.parametrize(("path", "name"), [("/value", "value"), ("/avalue", "avalue")], ids=["sync", "async"])
def test_value_cached(app: Any, raw: valkey.Valkey, key_prefix: str, path: str, name: str) -> None:
    """cache(key, fn, 60) and await cache(key, coro_fn, 60) in a route compute once and store under the key."""
    client = app.test_client()
    first, second = client.get(path), client.get(path)
    assert first.status == second.status == 200
    assert first.data == second.data
    assert app.computations[name] == 1
    assert (ROUTE_TTL - 1) * 1000 < raw.pttl(key_prefix + name) <= ROUTE_TTL * 1000


@pytest.mark.parametrize(("fn", "power"), [("square", 2), ("cube", 3)], ids=["sync", "async"])
def test_decorator_cached(app: Any, fn: str, power: int) -> None:
    """@cache() on a function (sync or async) computes once per argument value."""
    client = app.test_client()
    three, three_again, four = (client.get(f"/{fn}/{n}").json() for n in (3, 3, 4))
    assert three == three_again and three["value"]["result"] == 3**power
    assert four["value"]["result"] == 4**power and four["value"]["token"] != three["value"]["token"]
    assert app.computations[fn] == 2


def test_cache_shared_between_app_instances(app: Any, server: ServerInfo, key_prefix: str, tmp_path: Path) -> None:
    """A second application on its own handler instance, same server and prefix, serves what the first cached."""
    client = app.test_client()
    page, value = client.get("/page").data, client.get("/avalue").data
    other_handler = make_handler(type(app.cache.valkey).__name__, server, key_prefix)
    try:
        other = create_app(other_handler, root_path=str(tmp_path / "other"))
        other_client = other.test_client()
        assert other_client.get("/page").data == page
        assert other_client.get("/avalue").data == value
        assert dict(other.computations) == {}
    finally:
        close_handler(other_handler)


def test_route_response_expires(app: Any) -> None:
    """A route under cache.response(1) is served from the cache for 1 s after computing, then recomputed."""
    client = app.test_client()
    assert_expires(lambda: client.get("/short").json()["token"], SHORT_TTL)
    assert app.computations["short"] == 2


# -- served by granian, two workers, over loopback HTTP ----------------------------------------------------------


@pytest.fixture(scope="module")
def granian_apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str, str], ServedApp]]:
    """Granian instances of this module, started on first use (one per server, handler and interface)."""
    apps: dict[tuple[str, str, str], ServedApp] = {}
    with ExitStack() as stack:  # every instance is stopped and its keys removed, whatever fails first
        yield apps
        for served in apps.values():
            stack.callback(drop_keys, served)
            stack.callback(served.stop)


def drop_keys(served: ServedApp) -> None:
    if served.cluster:
        from valkey.cluster import ValkeyCluster

        client: Any = ValkeyCluster(host=served.cache_host, port=served.cache_port)
    else:
        client = valkey.Valkey(host=served.cache_host, port=served.cache_port)
    try:
        scan_delete(client, served.prefix)
    finally:
        client.close()


@pytest.fixture(params=["rsgi", "asgi"])
def served(request: pytest.FixtureRequest, server: ServerInfo, handler: Any,
           granian_apps: dict[tuple[str, str, str], ServedApp], tmp_path_factory: pytest.TempPathFactory) -> ServedApp:
    """The app under granian (--workers 2) caching with the test's handler kind, on the rsgi or asgi interface."""
    kind, interface = type(handler).__name__, request.param
    key = (server.id, kind, interface)
    if key not in granian_apps:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        prefix = f"cert:{RUN_ID}:{worker}:granian-{server.id}-{kind}-{interface}-{uuid.uuid4().hex[:6]}:"
        workdir = tmp_path_factory.mktemp(f"granian-{server.id}-{kind}-{interface}")
        granian_apps[key] = ServedApp(kind, interface, server.host, server.port, prefix, workdir,
                                     short_ttl=SHORT_TTL, cluster=server.cluster).start()
    return granian_apps[key]


def check_two_workers(served: ServedApp, replies: list[Reply]) -> set[int]:
    pids = {r.served_by for r in replies}
    assert len(pids) == 2, f"only {pids} answered in {len(replies)} requests\n{served.log_tail()}"
    assert pids <= served.worker_pids(), (pids, served.worker_pids())
    return pids


@pytest.mark.parametrize("path", ["/page", "/page-sync"], ids=["async", "sync"])
def test_served_response_shared_by_workers(served: ServedApp, path: str) -> None:
    """A response cached by one granian worker is the response the other worker serves: one computation, one body."""
    replies = until_two_workers(served, f"{path}?run={uuid.uuid4().hex}")
    pids = check_two_workers(served, replies)
    bodies = {r.body["token"] for r in replies}
    assert len(bodies) == 1, f"computed {len(bodies)} times across workers {pids}"
    assert all(r.body == replies[0].body for r in replies)
    assert replies[0].body["computed_by"] in pids and replies[0].body["computation"] >= 1


@pytest.mark.parametrize("path", ["/value", "/avalue", "/square/{n}", "/cube/{n}"],
                         ids=["call", "await", "decorator-sync", "decorator-async"])
def test_served_value_shared_by_workers(served: ServedApp, path: str) -> None:
    """A value cached by one worker (cache(), await cache(), @cache()) is the value the other worker reads."""
    replies = until_two_workers(served, path.format(n=uuid.uuid4().int % 10**9))
    check_two_workers(served, replies)
    tokens = {r.body["value"]["token"] for r in replies}
    assert len(tokens) == 1, f"computed {len(tokens)} times across workers"
    assert {r.body["served_by"] for r in replies} == {r.served_by for r in replies}


def test_served_response_expires(served: ServedApp) -> None:
    """Under granian a route under cache.response(1) is served for 1 s after computing, then recomputed."""
    path = f"/short?run={uuid.uuid4().hex}"
    assert_expires(lambda: served.get(path).body["token"], SHORT_TTL)
