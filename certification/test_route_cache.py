"""Route caching with ``cache.response()``: async routes on ValkeyCache's async API, Emmett's keys and entries.

The app (certification/support_routes.py) is driven through its ASGI interface on the test's own event loop, so
that a request held on the cache and a second request share one loop, as they do on a granian worker.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import valkey
from emmett_core.cache.handlers import RamCache
from emmett_core.routing.cache import CacheDispatcher, RouteCacheRule
from emmett_valkey import ValkeyCache
from emmett_valkey.codec import MISSING
from emmett_valkey.keys import glob_escape
from emmett_valkey.routes import AsyncRouteCacheRule, _get_data
from emmett_valkey_matrix.executor import PortClaim

from certification.session import ServerInfo
from certification.support import close_handler, make_handler, scan_delete, start_local_cluster
from certification.support_async import DelayProxy, wait_until
from certification.support_faults import poll
from certification.support_integration import ServedApp
from certification.support_routes import ROUTE_TTL, Recording, asgi_get, route_app

pytestmark = pytest.mark.integration

HOLD_FALLBACK = 10.0  # seconds the proxy holds a reply nobody releases: a blocked loop is then seen, not hung on
#: requests of every key strategy: query string (in any order), language (on the URL), a keyed header, the hostname
REQUESTS = [("/page", {}), ("/page?b=2&a=1", {}), ("/page?a=1&b=2", {}), ("/it/page", {}),
            ("/page-sync?x=1", {}), ("/varied/1", {"x-tenant": "t1"}), ("/varied/1", {"x-tenant": "t2"}),
            ("/varied/2?q=1", {"x-tenant": "t1"}), ("/it/plain?ignored=1", {}),
            ("/plain?ignored=2", {}), ("/missing", {})]


def entries(raw: valkey.Valkey, prefix: str) -> dict[str, Any]:
    """Every stored entry under *prefix*, by key without the prefix, unpickled (RedisCache's ``!`` + pickle)."""
    out = {}
    for key in raw.scan_iter(match=glob_escape(prefix) + "*", count=1000):
        value = raw.get(key)
        assert value is not None and value.startswith(b"!"), value
        out[key.decode()[len(prefix):]] = pickle.loads(value[1:])
    return out


def run_requests(app: Any, requests: list[tuple[str, dict[str, str]]]) -> list[Any]:
    async def main() -> list[Any]:
        return [await asgi_get(app, path, headers) for path, headers in requests]

    return asyncio.run(main())


@pytest.fixture
def recording(server: ServerInfo, key_prefix: str, raw: valkey.Valkey) -> Any:
    """A recording ValkeyCache on the session server (a cluster handler on a cluster), on the test's prefix."""
    h = Recording(host=server.host, port=server.port, prefix=key_prefix, **server.handler_kwargs())
    yield h
    close_handler(h)
    scan_delete(raw, key_prefix)


def test_response_rule_is_emmetts_rule_on_the_async_api(ours: ValkeyCache) -> None:
    """cache.response() gives Emmett's RouteCacheRule (a subclass), and emmett_core's dispatcher serves it async."""
    rule = ours.response(30, query_params=False, headers=["x-a"])
    assert isinstance(rule, AsyncRouteCacheRule) and isinstance(rule, RouteCacheRule)
    assert (rule.duration, rule.check_headers, list(rule.strategies)) == (30, ["x-a"], ["kwargs", "language",
                                                                                      "headers"])
    assert CacheDispatcher.get_data is _get_data


@pytest.mark.parametrize("duration", [0, -1, "forever", float("nan")])
def test_response_bad_duration_raises_at_decoration(ours: ValkeyCache, duration: Any) -> None:
    """A bad cache.response() duration is a ValueError naming it when the route is declared, not at a request."""
    with pytest.raises(ValueError, match="duration"):
        ours.response(duration)


@pytest.mark.parametrize(("path", "name", "reads", "writes"), [("/page", "page", "aget", "aset"),
                                                               ("/page-sync", "page_sync", "get", "set")],
                         ids=["async-route", "sync-route"])
def test_route_uses_the_api_of_its_kind(recording: Recording, tmp_path: Path, path: str, name: str, reads: str,
                                        writes: str) -> None:
    """An async route reads and writes with aget/aset only; a sync route keeps the sync get/set; both hit after."""
    app = route_app(recording, str(tmp_path))
    first, second = run_requests(app, [(path, {}), (path, {})])
    assert first.status == second.status == 200 and first.body == second.body
    assert first.headers == second.headers and second.headers["x-computed"] == name
    assert app.computations[name] == 1
    assert recording.calls == [reads, writes, reads]


def test_route_not_blocked_while_cache_read_held(server: ServerInfo, key_prefix: str, raw: valkey.Valkey,
                                                  tmp_path: Path) -> None:
    """While a cached route's cache read waits on the server, a cache-free route on the same loop completes."""
    if server.cluster:
        pytest.skip("the held reply comes through a proxy in front of one server; a cluster client connects to the "
                    "nodes it discovers, around the proxy")
    with DelayProxy(server.host, server.port, 0.0) as proxy:
        h = Recording(host=proxy.host, port=proxy.port, prefix=key_prefix)
        app = route_app(h, str(tmp_path))

        async def main() -> None:
            assert (await asgi_get(app, "/free")).status == 200
            await h.aget("warm")  # the loop's connection is open before the gate closes
            h.read_issued = asyncio.Event()
            proxy.hold(fallback=HOLD_FALLBACK)
            held = asyncio.create_task(asgi_get(app, "/page?held=1"))
            await h.read_issued.wait()  # the cached route has issued its cache read
            await wait_until(lambda: proxy.held >= 1 or proxy.forced > 0 or held.done(), HOLD_FALLBACK + 5,
                             "the held reply")
            assert proxy.forced == 0 and not held.done(), "the cache read blocked the loop until it ended"
            free = await asyncio.wait_for(asgi_get(app, "/free"), HOLD_FALLBACK + 5)
            assert free.status == 200 and not held.done(), "the cache-free route waited for the cached one"
            assert proxy.forced == 0 and proxy.held >= 1, "the cached route's reply was no longer held"
            proxy.open()
            reply = await held
            assert reply.status == 200 and reply.json()["query"] == {"held": "1"}
            await h.aclose()

        try:
            asyncio.run(main())
        finally:
            h.close()
            scan_delete(raw, key_prefix)
    assert proxy.forced == 0 and app.computations["page"] == 1  # type: ignore[attr-defined]
    assert h.calls[-2:] == ["aget", "aset"]


@pytest.mark.cluster_only("the held node is one of a cluster of the session's build; the proxy test holds one "
                          "server")
def test_cluster_route_not_blocked_while_nodes_stopped(server: ServerInfo, key_prefix: str, tmp_path: Path) -> None:
    """On a cluster whose primaries are SIGSTOPped, a cache-free route completes while a cached route waits on them."""
    with start_local_cluster(server, tmp_path, replicas=0, node_timeout_ms=120_000) as cluster:
        host, port = cluster.startup_nodes[0]
        h = Recording(host=host, port=port, cluster=True, prefix=key_prefix, socket_timeout=60)
        app = route_app(h, str(tmp_path / "app"))
        forced = threading.Event()
        lock = threading.Lock()
        stopped: list[Any] = []

        def resume(by_fallback: bool) -> None:
            with lock:
                if stopped and by_fallback:
                    forced.set()
                for node in stopped:
                    node.kill(signal.SIGCONT)
                stopped.clear()

        fallback = threading.Timer(HOLD_FALLBACK, resume, (True,))  # a blocked loop cannot resume them itself

        async def main() -> None:
            assert (await asgi_get(app, "/free")).status == 200
            await h.aget("warm")  # the loop's cluster client knows the slots before the nodes stop
            h.read_issued = asyncio.Event()
            with lock:
                for node in cluster.primaries:
                    node.kill(signal.SIGSTOP)
                    stopped.append(node)
            fallback.start()
            held = asyncio.create_task(asgi_get(app, "/page?held=1"))
            await h.read_issued.wait()  # the cached route has issued its cache read
            free = await asyncio.wait_for(asgi_get(app, "/free"), HOLD_FALLBACK + 5)
            assert free.status == 200 and not held.done() and not forced.is_set(), \
                "the cache-free route waited for the cached one"
            resume(False)
            reply = await held
            assert reply.status == 200 and reply.json()["query"] == {"held": "1"}
            await h.aclose()

        try:
            asyncio.run(main())
        finally:
            fallback.cancel()
            resume(False)
            h.clear()
            h.close()
    assert not forced.is_set() and app.computations["page"] == 1  # type: ignore[attr-defined]
    assert h.calls[-2:] == ["aget", "aset"]


def test_served_route_not_blocked_while_cache_read_held(server: ServerInfo, key_prefix: str, raw: valkey.Valkey,
                                                         tmp_path: Path) -> None:
    """Under granian (one worker), a request waiting on a cached route's cache read does not hold up another one."""
    if server.cluster:
        pytest.skip("the held reply comes through a proxy in front of one server; a cluster client connects to the "
                    "nodes it discovers, around the proxy")
    with DelayProxy(server.host, server.port, 0.0) as proxy:
        served = ServedApp("ValkeyCache", "rsgi", proxy.host, proxy.port, key_prefix, tmp_path / "granian",
                           workers=1).start()
        try:
            assert served.get("/page?warm=1").status == 200  # the worker's connection is open before the gate closes
            replies: dict[str, Any] = {}
            path = f"/page?run={uuid.uuid4().hex}"
            proxy.hold(fallback=HOLD_FALLBACK)

            def request_held() -> None:
                try:
                    replies["held"] = served.get(path, HOLD_FALLBACK + 20)
                except Exception as exc:  # e.g. a 500 (timed out on the cache) is not JSON: the assert below says so
                    replies["held"] = exc

            held = threading.Thread(target=request_held)
            held.start()
            asyncio.run(wait_until(lambda: proxy.held >= 1 or proxy.forced > 0 or not held.is_alive(),
                                   HOLD_FALLBACK + 5, "the held cache read"))
            assert proxy.forced == 0 and held.is_alive(), "the cached route's read ended before the test let it"
            free = served.get("/counts", HOLD_FALLBACK + 5)  # a cache-free route of the same worker
            assert free.status == 200 and held.is_alive(), "the cache-free route waited for the cached one"
            assert proxy.forced == 0 and proxy.held >= 1, "the worker's cache read was let through by the fallback"
            proxy.open()
            held.join(HOLD_FALLBACK + 20)
            reply = replies["held"]
            assert not isinstance(reply, Exception) and reply.status == 200, reply
            assert reply.served_by == free.body["pid"]
            assert free.body["counts"]["page"] == 1  # the held request computed nothing yet when /counts answered
        finally:
            served.stop()
            scan_delete(raw, key_prefix)


def test_entries_and_keys_same_as_stock_rule(ours: ValkeyCache, raw: valkey.Valkey, key_prefix: str,
                                             tmp_path: Path) -> None:
    """Ours stores, on any topology, the keys and entries Emmett's own rule and dispatcher give RamCache."""
    ram = RamCache(prefix=key_prefix)
    ram_app = route_app(ram, str(tmp_path / "ram"))
    ram_replies = run_requests(ram_app, REQUESTS + REQUESTS)
    app = route_app(ours, str(tmp_path / "ours"))
    replies = run_requests(app, REQUESTS + REQUESTS)
    stored = entries(raw, key_prefix)
    assert replies == ram_replies and dict(app.computations) == dict(ram_app.computations)  # type: ignore[attr-defined]
    assert {key_prefix + k for k in stored} == set(ram.data) and len(stored) == 8
    for key, entry in stored.items():
        reference = ram.data[key_prefix + key].value
        assert entry["content"] == reference["content"] and dict(entry["headers"]) == dict(reference["headers"])


def test_entries_and_keys_same_as_emmetts_rule(ours: ValkeyCache, baseline: Any, raw: valkey.Valkey,
                                               key_prefix: str, tmp_path: Path) -> None:
    """For every key strategy ours stores the keys, entries, TTLs and headers RedisCache does under Emmett's rule."""
    results: dict[str, Any] = {}
    for name, handler in (("ours", ours), ("baseline", baseline)):
        app = route_app(handler, str(tmp_path / name))
        replies = run_requests(app, REQUESTS + REQUESTS)
        stored = entries(raw, key_prefix)
        ttls = {k: raw.pttl(key_prefix + k) for k in stored}
        assert all((ROUTE_TTL - 5) * 1000 < t <= ROUTE_TTL * 1000 for t in ttls.values()), ttls
        results[name] = (replies, stored, dict(app.computations))  # type: ignore[attr-defined]
        scan_delete(raw, key_prefix)
    (ours_replies, ours_stored, ours_counts), (base_replies, base_stored, base_counts) = results.values()
    assert ours_replies == base_replies
    assert ours_counts == base_counts == {"page": 3, "page_sync": 1, "varied": 3, "plain": 1, "missing": 2}
    assert ours_stored.keys() == base_stored.keys() and len(ours_stored) == 8
    for key, entry in ours_stored.items():
        assert set(entry) == {"content", "headers"}
        assert entry["content"] == base_stored[key]["content"]
        assert type(entry["headers"]) is type(base_stored[key]["headers"])
        assert dict(entry["headers"]) == dict(base_stored[key]["headers"])


@pytest.mark.parametrize("writer", ["RedisCache", "ValkeyCache"])
def test_entries_read_across_handlers(server: ServerInfo, key_prefix: str, raw: valkey.Valkey, tmp_path: Path,
                                      writer: str) -> None:
    """A response entry one handler wrote is served by the other without computing: same body, same headers."""
    reader = "ValkeyCache" if writer == "RedisCache" else "RedisCache"
    handlers = {kind: make_handler(kind, server, key_prefix) for kind in (writer, reader)}
    try:
        written = run_requests(route_app(handlers[writer], str(tmp_path / "w")), REQUESTS)
        app = route_app(handlers[reader], str(tmp_path / "r"))
        read = run_requests(app, REQUESTS)
        assert read == written
        assert dict(app.computations) == {"missing": 1}  # type: ignore[attr-defined]  # a 404 is never stored
    finally:
        for h in handlers.values():
            close_handler(h)
        scan_delete(raw, key_prefix)


def test_route_served_from_the_local_cache(server: ServerInfo, key_prefix: str, raw: valkey.Valkey,
                                           tmp_path: Path) -> None:
    """With local_cache=True an async cached route is stored on the server and then served from process memory."""
    if server.cluster:
        pytest.skip("local_cache is not available with cluster=True (tracking is per node)")
    h = ValkeyCache(host=server.host, port=server.port, prefix=key_prefix, local_cache=True)
    app = route_app(h, str(tmp_path))
    try:
        assert h.local is not None
        h.local.start()
        assert h.local.wait_active(10), "the invalidation connection did not come up"

        async def main() -> list[Any]:
            assert h.local is not None
            store = h.local.store
            replies = [await asgi_get(app, "/page?l=1")]  # computed and written
            # the write evicts the key here, then the server's broadcast of it does: a copy kept before the
            # broadcast arrives would be evicted by it
            await wait_until(lambda: store.stats.invalidated >= 2, 10, "the broadcast of the route's write")
            replies.append(await asgi_get(app, "/page?l=1"))  # read from the server, and kept locally
            local_hits = store.stats.hits
            replies.append(await asgi_get(app, "/page?l=1"))
            assert store.stats.hits == local_hits + 1  # served from process memory, no round trip
            await h.aclose()
            return replies

        replies = asyncio.run(main())
        assert len({r.body for r in replies}) == 1 and app.computations["page"] == 1  # type: ignore[attr-defined]
        names = [k.decode() for k in raw.scan_iter(match=glob_escape(key_prefix) + "*")]
        assert len(names) == 1 and h.local.store.lookup(names[0], time.monotonic()) is not MISSING
        raw.delete(names[0])  # another process clears it: the local copy is invalidated, the route recomputed
        assert poll(lambda: h.local is not None and h.local.store.lookup(names[0], time.monotonic()) is MISSING, 10)
        assert run_requests(app, [("/page?l=1", {})])[0].status == 200
        assert app.computations["page"] == 2  # type: ignore[attr-defined]
    finally:
        h.close()
        scan_delete(raw, key_prefix)


def test_route_fail_soft_on_a_down_server(server: ServerInfo, key_prefix: str, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    """With on_error="miss" and no server listening, an async cached route is served uncached, counted as a miss."""
    caplog.set_level(logging.WARNING, logger="emmett_valkey")
    claim = PortClaim()  # a free port nothing listens on
    topology = {"cluster": True, "startup_nodes": [("127.0.0.1", claim.port)]} if server.cluster else {}
    h = ValkeyCache(host="127.0.0.1", port=claim.port, prefix=key_prefix, on_error="miss", socket_timeout=1,
                    socket_connect_timeout=1, retries=0, **topology)
    app = route_app(h, str(tmp_path))
    try:
        replies = run_requests(app, [("/page", {}), ("/page", {})])
        assert [r.status for r in replies] == [200, 200] and app.computations["page"] == 2  # type: ignore[attr-defined]
        stats = h.stats()
        assert (stats["misses"], stats["hits"], stats["sets"]) == (2, 0, 0) and stats["errors"] == 4
        assert sum("failed, served as" in r.getMessage() for r in caplog.records) == 4
    finally:
        h.close()
        claim.release()


def test_route_fail_soft_on_a_held_server(server: ServerInfo, key_prefix: str, raw: valkey.Valkey,
                                          tmp_path: Path) -> None:
    """With on_error="miss", a cached route whose server does not answer is served uncached within socket_timeout."""
    if server.cluster:
        pytest.skip("the held replies come through a proxy in front of one server; a cluster client goes around it")
    with DelayProxy(server.host, server.port, 0.0) as proxy:
        h = ValkeyCache(host=proxy.host, port=proxy.port, prefix=key_prefix, on_error="miss", socket_timeout=0.3,
                        retries=0)
        app = route_app(h, str(tmp_path))

        async def main() -> Any:
            await h.aget("warm")
            proxy.hold(fallback=HOLD_FALLBACK)
            reply = await asgi_get(app, "/page?soft=1")
            await h.aclose()
            return reply

        try:
            reply = asyncio.run(main())
            proxy.open()
        finally:
            h.close()
            scan_delete(raw, key_prefix)
    assert reply.status == 200 and app.computations["page"] == 1  # type: ignore[attr-defined]
    assert proxy.forced == 0, "a reply was held until the fallback: the route waited for the server"
    assert (h.stats()["misses"], h.stats()["errors"]) == (2, 2)  # "warm" and the route's read; its write failed too
