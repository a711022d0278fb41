"""Async suite: the valkey.asyncio paths of ValkeyCache under concurrency, event-loop lag, loops and cancellation."""

from __future__ import annotations

import asyncio
import gc
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import valkey
from emmett_core.cache import Cache
from emmett_valkey import ValkeyCache

from certification.support import close_handler, make_handler
from certification.support_async import DelayProxy, LoopLag, wait_until

pytestmark = pytest.mark.async_

TASKS = 300
DELAY = 0.15  # seconds the proxy holds every reply of the server
#: how long a reply held at the proxy's gate waits for a task on the test's loop to release it before it passes
#: anyway (counted as forced): a bound for a handler that blocks the loop, never the proof for one that does not;
#: below both handlers' socket timeouts (5 s: ValkeyCache's default, redis-py's on the connection handshake)
RELEASE_DEADLINE = 2.0


@pytest.fixture
def proxy(server: Any) -> Iterator[DelayProxy]:
    """A loopback proxy in front of the server that delays every reply by DELAY seconds."""
    with DelayProxy(server.host, server.port, DELAY) as p:
        yield p


def client_name(key_prefix: str) -> str:
    """A CLIENT SETNAME name unique to the test, to find its connections in CLIENT LIST."""
    return "cert-" + key_prefix.replace(":", "-").strip("-")


def named_connections(raw: valkey.Valkey, name: str) -> int:
    return sum(1 for c in raw.client_list() if c.get("name") == name)


def wait_named_connections_closed(raw: valkey.Valkey, name: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (left := named_connections(raw, name)) and time.monotonic() < deadline:
        time.sleep(0.005)
    assert left == 0, f"{left} connection(s) named {name} still open after their event loop ended"


def const(value: Any) -> Callable[[], Awaitable[Any]]:
    async def compute() -> Any:
        await asyncio.sleep(0)
        return value

    return compute


async def never() -> Any:
    raise AssertionError("computed on a hit")


async def one_client(h: ValkeyCache, i: int) -> None:
    """Every async method on keys of this task's own, checking each result."""
    me = f"t{i:03d}:"
    value = {"i": i, "blob": "x" * (i % 64)}
    assert await h.aset(me + "v", value, 60) is True
    assert await h.aget(me + "v") == value
    batch = {f"{me}m{j}": (i, j) for j in range(3)}
    assert await h.aset_many(batch, 60) is True
    assert await h.aget_many([*batch, me + "absent"]) == batch
    assert await h.aget_or_set(me + "g", const(i * 7), 60) == i * 7
    assert await h.aget_or_set(me + "g", never, 60) == i * 7
    if i % 10 == 0:  # a pattern clear walks the whole keyspace: a tenth of the tasks, concurrently
        assert await h.aclear(me + "m*") == 3
    else:
        assert [await h.aclear(k) for k in batch] == [1] * 3
    assert await h.aget_many(list(batch)) == {}
    assert await h.aclear(me + "v") == 1
    assert await h.aget(me + "v") is None


async def mixed_workload(h: ValkeyCache, tasks: int) -> None:
    await asyncio.gather(*(one_client(h, i) for i in range(tasks)))


def assert_workload_left(raw: valkey.Valkey, key_prefix: str, tasks: int) -> None:
    """After the workload only each task's aget_or_set key is left, holding that task's value."""
    left = sorted(raw.scan_iter(match=key_prefix + "*", count=1000))
    assert left == sorted(f"{key_prefix}t{i:03d}:g".encode() for i in range(tasks))
    assert raw.get(f"{key_prefix}t{tasks - 1:03d}:g") == str((tasks - 1) * 7).encode()


# -- concurrency --------------------------------------------------------------------------------------------------


POOL_BOUND_ON_ONE_SERVER = ("max_connections bounds one server's pool; a cluster handler has a pool per node, and "
                            "its cluster client's pools are not bounded by it")


@pytest.mark.parametrize("pool", [{}, pytest.param({"max_connections": 10, "pool_timeout": 20},
                                                   marks=pytest.mark.standalone_only(POOL_BOUND_ON_ONE_SERVER))],
                         ids=["pool-default", "pool-10"])
def test_concurrent_mixed_operations(server: Any, key_prefix: str, raw: valkey.Valkey, pool: dict[str, Any]) -> None:
    """300 tasks running aset/aget/aset_many/aget_many/aget_or_set/aclear at once all get correct results."""
    name = client_name(key_prefix)
    h = make_handler("ValkeyCache", server, key_prefix, client_name=name, **pool)

    async def main() -> int:
        await mixed_workload(h, TASKS)
        return named_connections(raw, name)

    try:
        opened = asyncio.run(main())
        assert_workload_left(raw, key_prefix, TASKS)
        assert opened >= 1
        if pool:
            assert opened <= pool["max_connections"], "the bounded pool opened more connections than allowed"
        wait_named_connections_closed(raw, name)
    finally:
        close_handler(h)


def test_aget_or_set_concurrent_same_keys(ours: ValkeyCache) -> None:
    """300 concurrent aget_or_set calls on 10 keys all return their key's value; afterwards every call is a hit."""
    calls: Counter[int] = Counter()

    def compute(k: int) -> Callable[[], Awaitable[dict[str, int]]]:
        async def fn() -> dict[str, int]:
            calls[k] += 1
            await asyncio.sleep(0)
            return {"k": k}

        return fn

    async def round_() -> list[Any]:
        return await asyncio.gather(*(ours.aget_or_set(f"same{i % 10}", compute(i % 10), 60) for i in range(TASKS)))

    async def main() -> tuple[list[Any], int, list[Any]]:
        first = await round_()
        computed = sum(calls.values())
        return first, computed, await round_()

    first, computed, second = asyncio.run(main())
    expected = [{"k": i % 10} for i in range(TASKS)]
    assert first == expected and second == expected
    assert set(calls) == set(range(10)) and 10 <= computed <= TASKS
    assert sum(calls.values()) == computed, "the second round recomputed cached values"


def test_await_cache_concurrent(handler: Any) -> None:
    """300 concurrent ``await handler(key, coro_fn)`` on 30 keys return the right values; a second round is all hits."""
    calls: Counter[int] = Counter()

    def compute(k: int) -> Callable[[], Awaitable[list[int]]]:
        async def fn() -> list[int]:
            calls[k] += 1
            await asyncio.sleep(0)
            return [k, k * k]

        return fn

    async def round_() -> list[Any]:
        return await asyncio.gather(*(handler(f"c{i % 30}", compute(i % 30), 60) for i in range(TASKS)))

    async def main() -> tuple[list[Any], int, list[Any]]:
        first = await round_()
        computed = sum(calls.values())
        return first, computed, await round_()

    first, computed, second = asyncio.run(main())
    expected = [[i % 30, (i % 30) ** 2] for i in range(TASKS)]
    assert first == expected and second == expected
    assert sum(calls.values()) == computed, "the second round recomputed cached values"


def test_emmett_cache_async_api(handler: Any) -> None:
    """Through Emmett's ``Cache(valkey=...)``: ``await cache(key, coro_fn)`` and the async decorator (100 at once)."""
    name = "valkey" if isinstance(handler, ValkeyCache) else "redis"
    cache = Cache(**{name: handler})
    assert getattr(cache, name) is handler
    calls: Counter[int] = Counter()

    @cache("square", duration=60)
    async def square(x: int) -> int:
        calls[x] += 1
        await asyncio.sleep(0)
        return x * x

    async def main() -> tuple[list[int], list[int], Any]:
        first = await asyncio.gather(*(square(i % 20) for i in range(100)))
        seen = sum(calls.values())
        second = await asyncio.gather(*(square(i % 20) for i in range(100)))
        assert sum(calls.values()) == seen, "the decorator recomputed cached values"
        direct = await cache("direct", const({"via": "Cache"}), 60)
        return first, second, (direct, await cache("direct", never, 60))

    first, second, direct = asyncio.run(main())
    assert first == second == [(i % 20) ** 2 for i in range(100)]
    assert set(calls) == set(range(20))
    assert direct == ({"via": "Cache"}, {"via": "Cache"})
    assert handler.get("direct") == {"via": "Cache"}


# -- the event loop while waiting on the network ------------------------------------------------------------------


@pytest.mark.standalone_only("a delay proxy in front of one server's port (a cluster client follows MOVED past it)")
def test_get_or_set_loop_does_not_block(handler: Any, proxy: DelayProxy, key_prefix: str) -> None:
    """While ``await cache(key, coro_fn)`` (and ``aget``) wait on a slow network, the event loop keeps running.

    Proved, not timed: the proxy holds every reply until another task on the same loop releases it, so each call
    can only complete if that task ran while the call was waiting for its reply. A handler that blocks the loop
    never lets it run: its first held reply passes only after RELEASE_DEADLINE, counted as forced.
    """
    slow = make_handler(type(handler).__name__, proxy, key_prefix)  # the same handler kind, behind the proxy

    async def release_held_replies() -> None:
        while True:
            if proxy.held:
                proxy.release()
            await asyncio.sleep(0.001)

    async def main() -> tuple[list[Any], int, LoopLag]:
        await slow("warm", const(0), 60)  # connected (handshake done) before any reply is held
        replies = proxy.replies
        proxy.hold(fallback=RELEASE_DEADLINE)
        async with LoopLag() as lag:  # only to say, should the proof fail, how long the loop was blocked
            releaser = asyncio.create_task(release_held_replies())
            try:
                got = [await slow("k", const({"v": 1}), 60), await slow("k", never, 60)]
                if hasattr(slow, "aget"):
                    got.append(await slow.aget("k"))
            finally:
                releaser.cancel()
        return got, proxy.replies - replies, lag

    try:
        got, held_replies, lag = asyncio.run(main())
    finally:
        proxy.open()
        close_handler(slow)
    assert all(v == {"v": 1} for v in got) and handler.get("k") == {"v": 1}
    assert proxy.accepted >= 1 and held_replies >= 3, "the replies did not go through the proxy"
    assert proxy.forced == 0, (
        f"a reply waited {RELEASE_DEADLINE} s for a task of the event loop to run: the loop was blocked while the "
        f"call waited on the network (longest gap between ticks {lag.max_lag * 1000:.0f} ms)")


# -- event loops ----------------------------------------------------------------------------------------------------


def test_each_event_loop_gets_its_own_connections(server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """25 sequential asyncio.run calls each use a new connection (the stream), closed when their loop ends, no leak."""
    name = client_name(key_prefix)
    h = make_handler("ValkeyCache", server, key_prefix, client_name=name)

    async def roundtrip(i: int) -> tuple[int, int, int]:
        await h.aset("loop", i)
        got = await h.aget("loop")
        # the loop's one connection: on one server its stream (its pool is only made for transactions)
        one = h.aclient.client_id() if server.cluster else h.connections.astream.call("CLIENT", "ID")
        return got, await one, named_connections(raw, name)

    ids = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for i in range(25):
                got, conn_id, open_now = asyncio.run(roundtrip(i))
                assert got == i and open_now == 1
                ids.append(conn_id)
                wait_named_connections_closed(raw, name)
            gc.collect()
        assert len(set(ids)) == 25, "an event loop reused another loop's connection"
        leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
        assert leaks == []
    finally:
        close_handler(h)


def test_await_cache_across_event_loops(handler: Any) -> None:
    """``await cache(key, coro_fn)`` works in 20 sequential event loops without leaking resources."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(20):
            assert asyncio.run(handler(f"e{i % 5}", const(i % 5), 60)) == i % 5
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_uvloop_event_loop(server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """On uvloop, the concurrent workload and ``await cache(key, coro_fn)`` work; connections close with the loop."""
    uvloop = pytest.importorskip("uvloop")
    name = client_name(key_prefix)
    h = make_handler("ValkeyCache", server, key_prefix, client_name=name)

    async def main() -> tuple[str, Any]:
        await mixed_workload(h, 50)
        return type(asyncio.get_running_loop()).__module__, await h("uv", const("uvloop"), 60)

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                loop_module, got = uvloop.run(main())
                assert loop_module.startswith("uvloop") and got == "uvloop"
                wait_named_connections_closed(raw, name)
            gc.collect()
        assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
        raw.delete(key_prefix + "uv")
        assert_workload_left(raw, key_prefix, 50)
    finally:
        close_handler(h)


# -- cancellation ---------------------------------------------------------------------------------------------------


@pytest.mark.standalone_only("a delay proxy in front of one server's port (a cluster client follows MOVED past it)")
def test_cancelled_aget_does_not_poison_the_pool(ours: ValkeyCache, proxy: DelayProxy, key_prefix: str) -> None:
    """A task cancelled while its aget awaits the reply leaves no stale reply on the pooled connection it used."""
    ours.set("a", "A")
    ours.set("b", "B")
    # one pooled connection: a reply left on it by the cancelled task would be read by the next command
    # (no CLIENT SETINFO on connect: each reconnection after a cancel would cost a delayed round trip more)
    slow = ValkeyCache(host=proxy.host, port=proxy.port, prefix=key_prefix, max_connections=1, pool_timeout=10,
                       lib_name=None, lib_version=None)

    async def cancel_mid_reply(start: Callable[[], Awaitable[Any]]) -> None:
        proxy.hold()  # the reply stays at the proxy until the task is cancelled: then it reaches the connection
        try:
            task = asyncio.create_task(start())
            await wait_until(lambda: proxy.held > 0, what="the server's reply to be held by the proxy")
            assert not task.done(), "the call ended without its reply"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            proxy.open()

    async def main() -> None:
        assert await slow.aget("warm") is None  # connected: the next reply to arrive is the cancelled GET's
        await cancel_mid_reply(lambda: slow.aget("a"))
        assert await slow.aget("b") == "B"
        assert await slow.aget_many(["b", "a"]) == {"b": "B", "a": "A"}
        await cancel_mid_reply(lambda: slow.aget_many(["a", "b"]))
        assert await slow.aget("b") == "B"
        proxy.hold()  # the reply cannot beat the timeout, however the machine schedules us
        try:
            with pytest.raises(asyncio.TimeoutError):  # the common way a read gets cancelled: a timeout around it
                await asyncio.wait_for(slow.aget("a"), timeout=DELAY / 4)
        finally:
            proxy.open()
        assert await slow.aget("b") == "B" and await slow.aget("a") == "A"

    try:
        asyncio.run(main())
    finally:
        slow.close()
