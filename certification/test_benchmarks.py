"""Benchmarks: ValkeyCache beside the raw valkey-py client doing the same work and beside Emmett's RedisCache.

``pytest certification/test_benchmarks.py --benchmark-only`` measures at full size (100,000-key clears, thousands
of paired calls); with ``--benchmark-disable`` (ordinary runs, and always under xdist) every benchmark runs once at
a small size as a correctness check. Comparisons are paired (A, B, B, A blocks in the same test, see
support_bench.py) and stored in ``benchmark.extra_info``; ``emmett-valkey-matrix ratios <json>`` prints them.

extra_info keys read by ``emmett_valkey_matrix.bench``: ``role`` (ours, raw, baseline, control), ``op``,
``paired`` ({name: {median, q1, q3, rounds, ...}}, each a time ratio a/b with *a* the benchmarked callable),
``latency`` ({n, p50_ms, p99_ms, max_ms}), ``clear`` and ``keys_del`` (blocking figures), ``parser``, ``size``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import valkey
from valkey._parsers import _RESP2Parser

from certification.session import ServerInfo
from certification.support import make_handler, scan_delete
from certification.support_bench import (
    CHECK,
    FULL,
    PingProbe,
    Sizes,
    dumps,
    latency,
    loads,
    paired,
    parsers,
    slowest_command,
)

pytestmark = pytest.mark.benchmark

SMALL = b"v" * 100
LARGE = b"w" * 10_000
VALUES: dict[str, Any] = {"int": 1234567, "100B": SMALL, "10KB": LARGE}
GET_CASES = ["int-hit", "100B-hit", "10KB-hit", "miss"]
TTL_MS = 300_000
BATCH = 100
TASKS = 50


@pytest.fixture
def sizes(benchmark: Any) -> Sizes:
    """Full sizes when pytest-benchmark measures; check sizes under --benchmark-disable or xdist."""
    return CHECK if benchmark.disabled else FULL


@pytest.fixture
def cleaned(raw: valkey.Valkey, key_prefix: str) -> Iterator[str]:
    """The test's key prefix; its keys are deleted after the test."""
    yield key_prefix
    scan_delete(raw, key_prefix)


def _describe(benchmark: Any, role: str, op: str, group: str, size: Sizes, **extra: Any) -> None:
    benchmark.group = group
    benchmark.extra_info.update(role=role, op=op, size="full" if size.full else "check", parser=parsers(), **extra)


def _value(case: str) -> Any:
    return None if case == "miss" else VALUES[case.split("-")[0]]


class Peers:
    """The clients a handler is compared with on the same server and prefix; closed by :meth:`close`."""

    def __init__(self, server: ServerInfo, prefix: str) -> None:
        kw = server.connection_kwargs()
        self.prefix = prefix
        self.valkey = valkey.Valkey(**kw)  # default pool, as the handler holds it
        self.valkey_timeout = valkey.Valkey(**kw, socket_timeout=5.0)  # and with the handler's default socket timeout
        self.single = valkey.Valkey(**kw, single_connection_client=True)  # one dedicated connection
        self.redis = redis.Redis(**kw)  # what RedisCache runs on
        self.baseline = make_handler("RedisCache", server, prefix)

    def close(self) -> None:
        self.valkey.close()
        self.valkey_timeout.close()
        self.single.close()
        self.redis.close()
        self.baseline._cache.close()


@pytest.fixture
def peers(server: ServerInfo, cleaned: str) -> Iterator[Peers]:
    p = Peers(server, cleaned)
    yield p
    p.close()


# -- get and set -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", GET_CASES)
def test_get(benchmark: Any, handler: Any, peers: Peers, key_prefix: str, case: str, sizes: Sizes) -> None:
    """GET of an int, a 100-byte and a 10 KB pickled value (or a miss) returns the stored value, paired with peers."""
    expect = _value(case)
    if expect is not None:
        handler.set("k", expect)
    name = key_prefix + "k"

    def ours() -> Any:
        return handler.get("k")

    kind = type(handler).__name__
    role = "ours" if kind == "ValkeyCache" else "baseline"
    client = peers.valkey if role == "ours" else peers.redis

    def raw() -> Any:
        return loads(client.get(name))

    assert raw() == expect
    pairs = {"vs_raw": paired(ours, raw, sizes)}
    if role == "ours":
        pairs["vs_baseline"] = paired(ours, lambda: peers.baseline.get("k"), sizes)
        pairs["vs_raw_same_timeout"] = paired(ours, lambda: loads(peers.valkey_timeout.get(name)), sizes)
        pairs["vs_single_connection"] = paired(ours, lambda: loads(peers.single.get(name)), sizes)
    _describe(benchmark, role, "get", f"get-{case}", sizes, paired=pairs, latency=latency(ours, sizes.latency_n))
    assert benchmark(ours) == expect


@pytest.mark.parametrize("case", GET_CASES)
def test_get_raw(benchmark: Any, raw: valkey.Valkey, cleaned: str, case: str, sizes: Sizes) -> None:
    """The raw valkey-py client doing the handler's GET work (prefix, Emmett decoding) returns the stored value."""
    expect = _value(case)
    name = cleaned + "k"
    if expect is not None:
        raw.set(name, dumps(expect), px=TTL_MS)
    _describe(benchmark, "raw", "get", f"get-{case}", sizes)
    assert benchmark(lambda: loads(raw.get(cleaned + "k"))) == expect


@pytest.mark.parametrize("case", list(VALUES))
def test_set(benchmark: Any, handler: Any, peers: Peers, raw: valkey.Valkey, key_prefix: str, case: str,
             sizes: Sizes) -> None:
    """SET of an int, a 100-byte and a 10 KB value stores it with the default lifetime, paired with peers."""
    value = VALUES[case]
    name = key_prefix + "k"

    def ours() -> Any:
        return handler.set("k", value)

    kind = type(handler).__name__
    if kind == "ValkeyCache":
        role = "ours"
        pairs = {
            "vs_raw": paired(ours, lambda: peers.valkey.set(name, dumps(value), px=TTL_MS), sizes),
            "vs_baseline": paired(ours, lambda: peers.baseline.set("k", value), sizes),
            "vs_raw_same_timeout": paired(ours, lambda: peers.valkey_timeout.set(name, dumps(value), px=TTL_MS), sizes),
            "vs_single_connection": paired(ours, lambda: peers.single.set(name, dumps(value), px=TTL_MS), sizes),
        }
    else:
        role = "baseline"
        pairs = {"vs_raw": paired(ours, lambda: peers.redis.set(name, dumps(value), ex=TTL_MS // 1000), sizes)}
    _describe(benchmark, role, "set", f"set-{case}", sizes, paired=pairs, latency=latency(ours, sizes.latency_n))
    raw.delete(name)
    assert benchmark(ours)
    assert handler.get("k") == value
    assert TTL_MS - 60_000 < raw.pttl(name) <= TTL_MS


@pytest.mark.parametrize("case", list(VALUES))
def test_set_raw(benchmark: Any, raw: valkey.Valkey, cleaned: str, case: str, sizes: Sizes) -> None:
    """The raw valkey-py client doing the handler's SET work (prefix, Emmett encoding, PX) stores the value."""
    value, name = VALUES[case], cleaned + "k"
    _describe(benchmark, "raw", "set", f"set-{case}", sizes)
    assert benchmark(lambda: raw.set(cleaned + "k", dumps(value), px=TTL_MS))
    assert loads(raw.get(name)) == value


def test_control_pair(benchmark: Any, server: ServerInfo, cleaned: str, sizes: Sizes) -> None:
    """Two identical raw clients doing the same GET: their paired ratio shows the noise floor of every ratio here."""
    kw = server.connection_kwargs()
    a, b = valkey.Valkey(**kw), valkey.Valkey(**kw)
    try:
        name = cleaned + "k"
        a.set(name, dumps(SMALL), px=TTL_MS)
        pairs = {"control": paired(lambda: loads(a.get(name)), lambda: loads(b.get(name)), sizes)}
        _describe(benchmark, "control", "get", "control", sizes, paired=pairs)
        assert benchmark(lambda: loads(a.get(name))) == SMALL
    finally:
        a.close()
        b.close()


@pytest.mark.parametrize("value", ["100B", "10KB"])
def test_get_python_parser(benchmark: Any, server: ServerInfo, ours: Any, key_prefix: str, value: str,
                           sizes: Sizes) -> None:
    """ValkeyCache forced onto valkey-py's pure-Python parser reads the same values; paired with the default parser."""
    from emmett_valkey import ValkeyCache

    pure = ValkeyCache(host=server.host, port=server.port, prefix=key_prefix, parser_class=_RESP2Parser)
    try:
        ours.set("k", VALUES[value])
        pairs = {"default_vs_python_parser": paired(lambda: ours.get("k"), lambda: pure.get("k"), sizes)}
        _describe(benchmark, "ours", "get", f"parser-{value}", sizes, paired=pairs,
                  forced_parser=_RESP2Parser.__name__)
        assert benchmark(lambda: pure.get("k")) == VALUES[value]
    finally:
        pure.close()


# -- get_many and set_many -------------------------------------------------------------------------------------


def _batch_sizes(sizes: Sizes) -> Sizes:
    """Fewer paired rounds for a side that makes 100 round trips per call."""
    return dataclasses.replace(sizes, rounds=min(sizes.rounds, 101))


def test_get_many(benchmark: Any, ours: Any, peers: Peers, key_prefix: str, sizes: Sizes) -> None:
    """get_many of 100 keys returns all 100 values; paired against 100 handler gets and against raw MGET."""
    keys = [f"m{i}" for i in range(BATCH)]
    expect = {k: SMALL + k.encode() for k in keys}
    ours.set_many(expect)
    names = [key_prefix + k for k in keys]

    def many() -> Any:
        return ours.get_many(keys)

    def singles() -> Any:
        return {k: ours.get(k) for k in keys}

    def raw_mget() -> Any:
        return {k: loads(v) for k, v in zip(keys, peers.valkey.mget(names), strict=True) if v is not None}

    assert singles() == raw_mget() == expect
    sizes = _batch_sizes(sizes)
    pairs = {"vs_singles": paired(many, singles, sizes), "vs_raw": paired(many, raw_mget, sizes)}
    _describe(benchmark, "ours", "get_many", "get_many-100", sizes, paired=pairs, keys=BATCH)
    assert benchmark(many) == expect


def test_set_many(benchmark: Any, ours: Any, peers: Peers, raw: valkey.Valkey, key_prefix: str, sizes: Sizes) -> None:
    """set_many of 100 keys stores all 100 with their lifetime; paired against 100 handler sets and a raw pipeline."""
    mapping = {f"s{i}": SMALL + str(i).encode() for i in range(BATCH)}

    def many() -> Any:
        return ours.set_many(mapping)

    def singles() -> Any:
        return all([ours.set(k, v) for k, v in mapping.items()])

    def raw_pipeline() -> Any:
        with peers.valkey.pipeline(transaction=True) as pipe:  # what set_many sends: one MULTI/EXEC
            for k, v in mapping.items():
                pipe.set(key_prefix + k, dumps(v), px=TTL_MS)
            return pipe.execute()

    sizes = _batch_sizes(sizes)
    pairs = {"vs_singles": paired(many, singles, sizes), "vs_raw": paired(many, raw_pipeline, sizes)}
    _describe(benchmark, "ours", "set_many", "set_many-100", sizes, paired=pairs, keys=BATCH)
    raw.delete(*(key_prefix + k for k in mapping))
    assert benchmark(many) is True
    assert ours.get_many(list(mapping)) == mapping
    assert TTL_MS - 60_000 < raw.pttl(key_prefix + "s0") <= TTL_MS


# -- pattern clear of 100,000 keys, on a server of its own (SLOWLOG and CONFIG SET) ----------------------------


@pytest.fixture(scope="module")
def lab(server: ServerInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, PingProbe]]:
    """A dedicated server of the same id that logs every command's duration, with a PING probe on it."""
    from emmett_valkey_matrix import ServerOptions, resolve

    resolved = resolve(server.id)
    if resolved.external:
        pytest.skip(f"{server.id} is run by the user: the clear benchmark needs a server of its own (CONFIG SET)")
    with resolved.start(ServerOptions(), workdir=Path(tmp_path_factory.mktemp(f"bench-{server.id}"))) as running:
        admin = valkey.Valkey(host=running.host, port=running.port)
        probe = None
        try:
            admin.config_set("slowlog-max-len", 1_000_000)
            admin.config_set("slowlog-log-slower-than", 0)
            probe = PingProbe(running.host, running.port)
            yield running, probe
        finally:
            code = probe.close() if probe is not None else 0
            admin.close()
    assert code == 0, f"the PING probe exited with {code}"


def _fill(client: valkey.Valkey, prefix: str, n: int) -> None:
    for start in range(0, n, 10_000):
        with client.pipeline(transaction=False) as pipe:
            for i in range(start, min(n, start + 10_000)):
                pipe.set(f"{prefix}{i}", dumps(i), px=TTL_MS)
            pipe.execute()


class ClearWindows:
    """Fills the keys, then measures one clear: wall time, the probe's worst PING, the slowest command logged."""

    def __init__(self, admin: valkey.Valkey, probe: PingProbe, prefix: str, n: int) -> None:
        self.admin, self.probe, self.prefix, self.n = admin, probe, prefix, n
        self.windows: list[dict[str, Any]] = []

    def prepare(self) -> None:
        _fill(self.admin, self.prefix, self.n)
        self.admin.slowlog_reset()
        self._settle()
        self.probe.reset()

    def _settle(self, quiet: int = 25, every: float = 0.01, deadline_s: float = 5.0) -> None:
        """Wait until the fill's aftermath (buffer frees, rehashing in the server's cron) is over.

        Seen here: a window opened right after filling 100,000 keys caught a 27-37 ms PING that no logged command
        explains, in the same place for ours and KEYS+DEL; PINGs every 10 ms, `quiet` of them in a row under 1 ms,
        mean the server is idle again, so the window measures the clear and nothing else.
        """
        end, streak = time.monotonic() + deadline_s, 0
        while streak < quiet and time.monotonic() < end:
            t0 = time.perf_counter()
            self.admin.ping()
            streak = streak + 1 if time.perf_counter() - t0 < 0.001 else 0
            time.sleep(every)

    def close_window(self, wall_s: float, deleted: int) -> None:
        worst_ping_ms, pings = self.probe.report()
        self.windows.append({"wall_s": round(wall_s, 6), "deleted": deleted, "worst_ping_ms": round(worst_ping_ms, 3),
                             "pings": pings, "slowest": slowest_command(self.admin)})

    def measure(self, clear: Callable[[], int]) -> None:
        self.prepare()
        t0 = time.perf_counter()
        deleted = clear()
        self.close_window(time.perf_counter() - t0, deleted)


def _summary(windows: list[dict[str, Any]]) -> dict[str, Any]:
    worst = max(windows, key=lambda w: w["slowest"]["ms"])["slowest"]
    return {"wall_s": min(w["wall_s"] for w in windows), "worst_ping_ms": max(w["worst_ping_ms"] for w in windows),
            "slowest_command_ms": worst["ms"], "slowest_command": worst["command"],
            "pings": sum(w["pings"] for w in windows), "rounds": len(windows), "windows": windows}


def test_clear_pattern(benchmark: Any, lab: tuple[Any, PingProbe], sizes: Sizes) -> None:
    """clear() of every key under a prefix deletes exactly them; KEYS+DEL (RedisCache.clear) is measured beside it."""
    from emmett_valkey import ValkeyCache

    running, probe = lab
    admin = valkey.Valkey(host=running.host, port=running.port)
    prefix, other, n_other = "bench:clear:", "bench:other:", 1_000
    ours = ValkeyCache(host=running.host, port=running.port, prefix=prefix)
    keys_del = make_handler("RedisCache", ServerInfo("lab", running.url, running.host, running.port, {}), prefix)
    try:
        admin.flushall()  # the dedicated server's own data only
        _fill(admin, other, n_other)  # keys the clear must leave alone
        ours_w = ClearWindows(admin, probe, prefix, sizes.clear_keys)
        base_w = ClearWindows(admin, probe, prefix, sizes.clear_keys)

        def keys_and_del() -> int:
            keys_del.clear()
            return sizes.clear_keys + n_other - int(admin.dbsize())

        # A, B, B, A: ours, KEYS+DEL, KEYS+DEL, ours. The benchmark times ours; refills happen in setup.
        deleted: list[int] = []
        clock = {"t0": 0.0, "t1": 0.0}

        def setup() -> None:
            if deleted:
                ours_w.close_window(clock["t1"] - clock["t0"], deleted[-1])
                if not base_w.windows:
                    base_w.measure(keys_and_del)
                    base_w.measure(keys_and_del)
            ours_w.prepare()

        def target() -> int:
            clock["t0"] = time.perf_counter()
            deleted.append(ours.clear())
            clock["t1"] = time.perf_counter()
            return deleted[-1]

        assert benchmark.pedantic(target, setup=setup, rounds=sizes.clear_rounds, iterations=1) == sizes.clear_keys
        ours_w.close_window(clock["t1"] - clock["t0"], deleted[-1])
        if not base_w.windows:
            base_w.measure(keys_and_del)
        assert [w["deleted"] for w in ours_w.windows + base_w.windows] == [sizes.clear_keys] * (
            len(ours_w.windows) + len(base_w.windows))
        assert admin.dbsize() == n_other
        _describe(benchmark, "ours", "clear", "clear", sizes, keys=sizes.clear_keys,
                  clear=_summary(ours_w.windows), keys_del=_summary(base_w.windows))
    finally:
        ours.close()
        keys_del._cache.close()
        admin.close()


# -- async -----------------------------------------------------------------------------------------------------


def _new_loop(kind: str) -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        return uvloop.new_event_loop()  # type: ignore[no-any-return]
    return asyncio.new_event_loop()


@pytest.fixture(params=["asyncio", "uvloop"])
def loop(request: pytest.FixtureRequest) -> Iterator[asyncio.AbstractEventLoop]:
    """A fresh event loop of each kind, closed (with its async generators) after the test."""
    lp = _new_loop(request.param)
    yield lp
    lp.run_until_complete(lp.shutdown_asyncgens())
    lp.close()


def test_async_concurrency(benchmark: Any, ours: Any, loop: asyncio.AbstractEventLoop, sizes: Sizes) -> None:
    """50 tasks sharing the async pool read every value right; paired against one task reading them in sequence."""
    n = sizes.async_ops
    keys = [f"a{i % 200}" for i in range(n)]
    ours.set_many({k: SMALL + k.encode() for k in set(keys)})

    async def sequential() -> int:
        return sum([(await ours.aget(k)) is not None for k in keys])

    async def concurrent() -> int:
        async def worker(part: list[str]) -> int:
            return sum([(await ours.aget(k)) is not None for k in part])

        return sum(await asyncio.gather(*(worker(keys[i::TASKS]) for i in range(TASKS))))

    def seq() -> int:
        return loop.run_until_complete(sequential())

    def conc() -> int:
        return loop.run_until_complete(concurrent())

    assert seq() == conc() == n
    pairs = {"sequential_vs_concurrent": paired(seq, conc, dataclasses.replace(sizes, rounds=min(sizes.rounds, 11)))}
    _describe(benchmark, "ours", "async_concurrency", f"async-{type(loop).__module__.split('.')[0]}", sizes,
              paired=pairs, ops=n, tasks=TASKS)
    assert benchmark(conc) == n
    loop.run_until_complete(ours.aclose())


def test_get_or_set_loop(benchmark: Any, handler: Any, loop: asyncio.AbstractEventLoop, sizes: Sizes) -> None:
    """Awaiting cache(key, coroutine) serves 50 cached values without calling the function again."""
    calls = []

    async def compute() -> bytes:
        calls.append(1)
        return SMALL

    keys = [f"g{i}" for i in range(50)]

    async def batch() -> list[Any]:
        return [await handler.get_or_set_loop(k, compute, 300) for k in keys]

    def run() -> list[Any]:
        return loop.run_until_complete(batch())

    assert run() == [SMALL] * 50 and len(calls) == 50
    role = "ours" if type(handler).__name__ == "ValkeyCache" else "baseline"
    _describe(benchmark, role, "get_or_set_loop", f"get_or_set_loop-{type(loop).__module__.split('.')[0]}", sizes,
              ops=50)
    assert benchmark(run) == [SMALL] * 50
    assert len(calls) == 50
    if hasattr(handler, "aclose"):
        loop.run_until_complete(handler.aclose())


# -- async peers: the same key and value read by every async client a user could pick ---------------------------

PEER_VALUE = {"user": 42, "name": "ada", "roles": ["reader", "writer"], "active": True}
PER_TASK = 10  # agets per task in one batch of TASKS tasks


async def _glide_client(server: ServerInfo) -> Any:
    """Valkey GLIDE's async client on the server (skipped where the package cannot be imported)."""
    glide = pytest.importorskip("glide", reason="valkey-glide (GLIDE's async client) is not installed here")
    # the handler's default socket timeout (GLIDE's own, 250 ms, fails batches on a busy machine)
    config = glide.GlideClientConfiguration([glide.NodeAddress(server.host, server.port)], request_timeout=5000)
    return await glide.GlideClient.create(config)


def _batch(loop: asyncio.AbstractEventLoop, get: Callable[[], Any], tasks: int, per_task: int) -> Callable[[], int]:
    """A callable running *tasks* concurrent tasks that each await ``get()`` *per_task* times; returns the hits."""

    async def task() -> int:
        return sum([(await get()) == PEER_VALUE for _ in range(per_task)])

    async def batch() -> int:
        if tasks == 1:
            return await task()
        return sum(await asyncio.gather(*(task() for _ in range(tasks))))

    return lambda: loop.run_until_complete(batch())


def _ops_s(pair: dict[str, Any], ops: int) -> float:
    return round(ops / (pair["a_median_us"] / 1e6), 1)


@pytest.mark.standalone_only("the async peers are single-server clients")
def test_async_peers_50_tasks(benchmark: Any, server: ServerInfo, ours: Any, loop: asyncio.AbstractEventLoop,
                              sizes: Sizes) -> None:
    """50 tasks awaiting aget of one small pickled dict read it right; paired with valkey.asyncio's pool and GLIDE."""
    import valkey.asyncio as avalkey

    ours.set("peer", PEER_VALUE)
    name = ours.prefix + "peer"
    pool = avalkey.Valkey(**server.connection_kwargs())
    ops = TASKS * PER_TASK
    mine = _batch(loop, lambda: ours.aget("peer"), TASKS, PER_TASK)

    async def pooled() -> Any:
        return loads(await pool.get(name))

    rounds = dataclasses.replace(sizes, rounds=min(sizes.rounds, 101))
    try:
        assert mine() == _batch(loop, pooled, TASKS, PER_TASK)() == ops
        pairs = {"vs_asyncio_pool": paired(mine, _batch(loop, pooled, TASKS, PER_TASK), rounds)}
        skipped = ""
        try:
            glide = loop.run_until_complete(_glide_client(server))
        except pytest.skip.Exception as exc:
            skipped = str(exc)
        else:
            async def glided() -> Any:
                return loads(await glide.get(name))

            try:
                assert _batch(loop, glided, TASKS, PER_TASK)() == ops
                pairs["vs_glide"] = paired(mine, _batch(loop, glided, TASKS, PER_TASK), rounds)
            finally:
                loop.run_until_complete(glide.close())
        _describe(benchmark, "ours", "async_peers", f"async-peers-{type(loop).__module__.split('.')[0]}", sizes,
                  paired=pairs, ops=ops, tasks=TASKS, ops_s=_ops_s(pairs["vs_asyncio_pool"], ops),
                  glide_skipped=skipped)
        assert benchmark(mine) == ops
    finally:
        loop.run_until_complete(pool.aclose())
        loop.run_until_complete(ours.aclose())


@pytest.mark.standalone_only("the async peers are single-server clients")
def test_async_one_task(benchmark: Any, server: ServerInfo, ours: Any, loop: asyncio.AbstractEventLoop,
                        sizes: Sizes) -> None:
    """One task awaiting aget in sequence reads the value right; paired with valkey.asyncio doing the same."""
    import valkey.asyncio as avalkey

    ours.set("peer", PEER_VALUE)
    name = ours.prefix + "peer"
    client = avalkey.Valkey(**server.connection_kwargs())
    mine = _batch(loop, lambda: ours.aget("peer"), 1, 50)

    async def theirs() -> Any:
        return loads(await client.get(name))

    try:
        assert mine() == _batch(loop, theirs, 1, 50)() == 50
        pairs = {"vs_asyncio": paired(mine, _batch(loop, theirs, 1, 50), dataclasses.replace(sizes, rounds=min(
            sizes.rounds, 301)))}
        _describe(benchmark, "ours", "async_one_task", f"async-one-task-{type(loop).__module__.split('.')[0]}",
                  sizes, paired=pairs, ops=50, latency_us=round(pairs["vs_asyncio"]["a_median_us"] / 50, 2))
        assert benchmark(mine) == 50
    finally:
        loop.run_until_complete(client.aclose())
        loop.run_until_complete(ours.aclose())


# -- sync peers: the floor (a bare socket) and the other clients a user could pick --------------------------------


class SocketFloor:
    """A bare blocking socket sending one prepacked GET and reading its bulk reply: the least any client can do."""

    def __init__(self, host: str, port: int, name: str) -> None:
        import socket

        self.sock = socket.create_connection((host, port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        key = name.encode()
        self.request = b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(key), key)

    def get(self) -> Any:
        self.sock.sendall(self.request)
        data = self.sock.recv(65536)
        head, _, rest = data.partition(b"\r\n")
        if head == b"$-1":
            return None
        size = int(head[1:])
        while len(rest) < size + 2:
            rest += self.sock.recv(65536)
        return loads(rest[:size])

    def close(self) -> None:
        self.sock.close()


@pytest.mark.standalone_only("the sync peers are single-server clients")
def test_sync_peers(benchmark: Any, server: ServerInfo, ours: Any, peers: Peers, sizes: Sizes) -> None:
    """A get of one small pickled dict reads it right; paired with a bare socket, GLIDE's sync client, RamCache."""
    from emmett.cache import RamCache

    ours.set("peer", PEER_VALUE)
    name = ours.prefix + "peer"
    floor = SocketFloor(server.host, server.port, name)
    ram = RamCache()
    ram.set("peer", PEER_VALUE, 300)

    def mine() -> Any:
        return ours.get("peer")

    others: dict[str, Callable[[], Any]] = {"vs_socket": floor.get, "vs_raw": lambda: loads(peers.valkey.get(name)),
                                            "vs_baseline": lambda: peers.baseline.get("peer"),
                                            "vs_ramcache": lambda: ram.get("peer")}
    glide = skipped = None
    try:
        import glide_sync

        glide = glide_sync.GlideClient.create(glide_sync.GlideClientConfiguration(
            [glide_sync.NodeAddress(server.host, server.port)], request_timeout=5000))
        others["vs_glide_sync"] = lambda: loads(glide.get(name))
    except ImportError as exc:
        skipped = f"valkey-glide-sync (GLIDE's sync client) is not installed here: {exc}"
    try:
        for other in others.values():
            assert other() == PEER_VALUE
        pairs = {label: paired(mine, other, sizes) for label, other in others.items()}
        _describe(benchmark, "ours", "sync_peers", "sync-peers", sizes, paired=pairs, glide_skipped=skipped,
                  latency_us=pairs["vs_socket"]["a_median_us"])
        assert benchmark(mine) == PEER_VALUE
    finally:
        floor.close()
        if glide is not None:
            glide.close()
