"""Stress suite: bounded mixed workloads of threads and processes on small pools, and pool exhaustion as configured.

The workloads run on a ValkeyCache whose pool is smaller than the number of workers.

Documented errors of a bounded pool (valkey-py's, passed through by ValkeyCache, and served as a miss or no-op with
``on_error="miss"``):

- ``max_connections`` without ``pool_timeout`` (a plain ConnectionPool): ``valkey.ConnectionError("Too many
  connections")`` at once when every connection is in use;
- ``max_connections`` with ``pool_timeout`` (a BlockingConnectionPool): the operation waits up to ``pool_timeout``
  seconds for a connection, then ``valkey.ConnectionError("No connection available.")``.

In the mixed workloads the pool waits up to 5 s while every operation takes milliseconds, and the workers of a pool run
in lockstep rounds (``support_stress.Rounds``): no worker can run ahead and keep taking connections back while another
waits, so a waiting worker is served by the connections the others give back. Neither error may occur there: they
must end with no error at all.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import valkey
from emmett_valkey import ValkeyCache

from certification.support import make_handler
from certification.support_stress import COUNTER, WorkerReport, run_threads, stress_process, verify

pytestmark = pytest.mark.stress

OPS = 400  # per worker: every workload is bounded in count ...
SECONDS = 6.0  # ... and in time


def client_name(key_prefix: str) -> str:
    """A CLIENT SETNAME value unique to the test, to find its connections in CLIENT LIST."""
    return "stress-" + hashlib.blake2b(key_prefix.encode(), digest_size=6).hexdigest()


class ConnectionSampler:
    """Samples CLIENT LIST every 10 ms in a thread and keeps the most connections seen with one client name.

    It samples once more after being stopped, and sets *seen* (an event) once it has seen a connection: whoever owns
    the connections keeps them open until then, so that the sampler seeing them is made sure of, not left to timing.
    """

    def __init__(self, raw: valkey.Valkey, name: str, seen: Any = None) -> None:
        self.raw, self.name, self.most, self.seen = raw, name, 0, seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:
            last = self._stop.is_set()
            self.most = max(self.most, sum(1 for c in self.raw.client_list() if c.get("name") == self.name))
            if self.most and self.seen is not None:
                self.seen.set()
            if last:
                return
            self._stop.wait(0.01)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def check_outcome(cache: ValkeyCache, reports: list[WorkerReport]) -> None:
    """No errors, no corrupted read, the counter at the exact total, every worker's own keys present and intact."""
    assert [e for r in reports for e in r.errors] == [], "errors in the workload (none is documented here)"
    assert [c for r in reports for c in r.corrupt] == [], "a read returned a corrupted or misrouted entry"
    assert sum(r.ops for r in reports) > 0
    assert cache.get(COUNTER) == sum(r.increments for r in reports), "increments were lost or doubled"
    for r in reports:
        names = [f"own:{r.writer}:{i}" for i in range(r.own_keys)]
        found = cache.get_many(names)
        assert sorted(found) == sorted(names), f"{r.writer} lost {len(names) - len(found)} of its {len(names)} entries"
        assert [p for n, v in found.items() if (p := verify(n, v))] == []


def test_threads_on_a_small_pool(server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """16 threads on a pool of 4 (plus 4 RedisCache threads): no error, no bad or lost entry, at most 4 connections.

    pool_timeout is 5 s; the shared counter must end at the exact sum of every worker's increments.
    """
    name = client_name(key_prefix)
    cache = ValkeyCache(**server.handler_args(), prefix=key_prefix, max_connections=4, pool_timeout=5,
                        client_name=name)
    base = make_handler("RedisCache", server, key_prefix)
    try:
        workers = [(cache, f"v{i}", "ValkeyCache") for i in range(16)] + [(base, f"b{i}", "RedisCache")
                                                                           for i in range(4)]
        with ConnectionSampler(raw, name) as sampler:
            reports = run_threads(workers, OPS, SECONDS)
        check_outcome(cache, reports)
        assert 1 <= sampler.most <= 4, f"{sampler.most} connections named {name} on the server, pool max is 4"
        assert len(cache.client.connection_pool._connections) <= 4
    finally:
        cache.close()
        base._cache.close()


@pytest.mark.cluster_only("the same workload on the cluster topology, where max_connections bounds no pool (a cluster "
                          "client keeps one per node): what is checked is the outcome, not the pool")
def test_threads_on_a_cluster(server: Any, key_prefix: str) -> None:
    """16 threads on one cluster handler, keys over every primary: no error, no bad or lost entry, exact counter."""
    cache = ValkeyCache(**server.handler_args(), prefix=key_prefix)
    try:
        reports = run_threads([(cache, f"c{i}", "ValkeyCache") for i in range(16)], OPS, SECONDS)
        check_outcome(cache, reports)
        owners = {cache.client.get_node_from_key(key_prefix + f"own:{r.writer}:0").name for r in reports}
        assert len(owners) > 1, "every writer's keys landed on one node: the workload did not cross slots"
    finally:
        cache.clear()
        cache.close()


@pytest.mark.standalone_only("a pool of 2 connections per process on one server; a cluster handler has a pool per "
                             "node, and its cluster client's pools are not bounded by max_connections")
def test_processes_and_threads_on_small_pools(server: Any, key_prefix: str, raw: valkey.Valkey) -> None:
    """3 spawned processes x 4 threads, a pool of 2 each: no error, no bad or lost entry, exact counter, <= 2 each."""
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    names = [client_name(key_prefix + str(p)) for p in range(3)]
    seen = [ctx.Event() for _ in range(3)]  # each child keeps its connections open until its sampler has seen them
    procs = [ctx.Process(target=stress_process,
                         args=(server.handler_args(), key_prefix, p, 4, OPS, SECONDS, names[p], results, seen[p]))
             for p in range(3)]
    samplers = [ConnectionSampler(raw, n, e) for n, e in zip(names, seen, strict=True)]
    for s in samplers:
        s.__enter__()
    try:
        for proc in procs:
            proc.start()
        collected: list[dict[str, Any]] = []
        for _ in procs:
            collected.extend(results.get(timeout=60))
    finally:
        for s in samplers:
            s.__exit__()
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join(5)
        results.close()
        results.join_thread()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    reports = [WorkerReport(**r) for r in collected]
    assert len(reports) == 12
    cache = ValkeyCache(**server.handler_args(), prefix=key_prefix)
    try:
        check_outcome(cache, reports)
    finally:
        cache.close()
    assert all(1 <= s.most <= 2 for s in samplers), [s.most for s in samplers]


# -- pool exhaustion ----------------------------------------------------------------------------------------------


@pytest.fixture
def bounded(request: pytest.FixtureRequest, server: Any, key_prefix: str) -> Iterator[ValkeyCache]:
    """A ValkeyCache with the pool settings given by indirect parametrization."""
    h = ValkeyCache(**server.handler_args(), prefix=key_prefix, **request.param)
    yield h
    h.close()


def hold_all(cache: ValkeyCache, n: int) -> list[Any]:
    """Check out *n* connections from the handler's pool directly (connected, so really in use)."""
    pool = cache.client.connection_pool
    return [pool.get_connection("PING") for _ in range(n)]


@pytest.mark.parametrize("bounded", [{"max_connections": 2}], indirect=True)
@pytest.mark.standalone_only("the connection pool of one server (a cluster client keeps one pool per node)")
def test_pool_without_timeout_refuses_at_once(bounded: ValkeyCache) -> None:
    """max_connections=2, no pool_timeout, both held: ConnectionError("Too many connections") at once, then works."""
    pool = bounded.client.connection_pool
    held = hold_all(bounded, 2)
    try:
        t0 = time.monotonic()
        with pytest.raises(valkey.ConnectionError, match="Too many connections"):
            bounded.get("x")
        with pytest.raises(valkey.ConnectionError, match="Too many connections"):
            bounded.set("x", 1)
        assert time.monotonic() - t0 < 2.0
    finally:
        for conn in held:
            pool.release(conn)
    assert bounded.set("x", 1) is True and bounded.get("x") == 1


@pytest.mark.parametrize("bounded", [{"max_connections": 2, "pool_timeout": 0.2}], indirect=True)
@pytest.mark.standalone_only("the connection pool of one server (a cluster client keeps one pool per node)")
def test_pool_timeout_fails_after_waiting(bounded: ValkeyCache) -> None:
    """pool_timeout=0.2, all held: ConnectionError("No connection available.") after ~0.2 s; one freed, it works."""
    pool = bounded.client.connection_pool
    held = hold_all(bounded, 2)
    try:
        t0 = time.monotonic()
        with pytest.raises(valkey.ConnectionError, match="No connection available"):
            bounded.get("x")
        waited = time.monotonic() - t0
        assert 0.15 <= waited < 3.0, f"waited {waited:.3f} s for a 0.2 s pool_timeout"
        pool.release(held.pop())
        assert bounded.set("x", 2) is True and bounded.get("x") == 2
    finally:
        for conn in held:
            pool.release(conn)


@pytest.mark.parametrize("bounded", [{"max_connections": 1, "pool_timeout": 5}], indirect=True)
@pytest.mark.standalone_only("the connection pool of one server (a cluster client keeps one pool per node)")
def test_waiting_operation_proceeds_when_released(bounded: ValkeyCache, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the only connection held, an operation waits (no error) and completes once the connection is released."""
    pool = bounded.client.connection_pool
    held = hold_all(bounded, 1)
    outcome: list[Any] = []
    # the operation is known to be waiting once it has asked the pool's (empty) queue for a connection
    waiting, empty_when_asked = threading.Event(), []
    queue_get = pool.pool.get

    def observed_get(*args: Any, **kwargs: Any) -> Any:
        empty_when_asked.append(pool.pool.empty())
        waiting.set()
        return queue_get(*args, **kwargs)

    monkeypatch.setattr(pool.pool, "get", observed_get)

    def wait_and_compute() -> None:
        try:
            outcome.append(bounded.get_or_set("w", lambda: "computed"))
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=wait_and_compute, daemon=True)
    worker.start()
    try:
        assert waiting.wait(timeout=30), f"the operation did not ask the pool for a connection: {outcome}"
        assert empty_when_asked[0], "the held connection was back in the pool"
        assert worker.is_alive() and outcome == [], "the operation did not wait for the held connection"
    finally:
        pool.release(held.pop())
    worker.join(timeout=5)
    assert not worker.is_alive() and outcome == ["computed"]
    assert bounded.get("w") == "computed"


@pytest.mark.parametrize("bounded", [{"max_connections": 1, "pool_timeout": 0.1, "on_error": "miss"}],
                         indirect=True)
@pytest.mark.standalone_only("the connection pool of one server (a cluster client keeps one pool per node)")
def test_pool_timeout_in_fail_soft_mode_is_a_miss(bounded: ValkeyCache) -> None:
    """With on_error="miss", a pool that times out serves a miss and a no-op write, counted as errors in stats()."""
    pool = bounded.client.connection_pool
    held = hold_all(bounded, 1)
    try:
        t0 = time.monotonic()
        assert bounded.get("s") is None
        assert bounded.set("s", 1) is False
        assert bounded.clear() == 0
        assert time.monotonic() - t0 >= 0.25, "the operations did not wait pool_timeout before giving up"
        assert bounded.stats()["errors"] == 3
    finally:
        pool.release(held.pop())
    assert bounded.set("s", 1) is True and bounded.get("s") == 1
