"""Tools of the benchmark suite: run sizes, paired A/B/B/A ratios, per-call latency, a PING probe in its own process.

Plain rounds of ops/s swing by 20% on a busy 2-core machine, so a comparison is never two separate runs: ``paired``
times *a* and *b* in alternating blocks (A, B, B, A) and keeps the median of the per-round ratios, so that drift
(another process, CPU frequency) hits both sides of every round alike. Everything measured goes into
``benchmark.extra_info`` in the shapes ``emmett_valkey_matrix.bench`` reads.
"""

from __future__ import annotations

import gc
import math
import multiprocessing
import pickle
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import valkey
from emmett_valkey_matrix.bench import shorten


@dataclass(frozen=True)
class Sizes:
    """How much work each benchmark does: tiny as a correctness check, full-size when measuring."""

    full: bool
    rounds: int  # paired A/B/B/A rounds
    block: int  # calls per block of a round
    latency_n: int  # single calls timed one by one for p50/p99
    clear_keys: int  # keys under the prefix a pattern clear deletes
    clear_rounds: int  # benchmarked rounds of the clear (each refills the keys)
    async_ops: int  # operations per async batch


CHECK = Sizes(full=False, rounds=3, block=1, latency_n=50, clear_keys=2_000, clear_rounds=1, async_ops=100)
FULL = Sizes(full=True, rounds=1_001, block=1, latency_n=3_000, clear_keys=100_000, clear_rounds=2, async_ops=500)


# -- the Emmett wire format, done by hand (what a raw client must do to store the same bytes) ---------------------


def dumps(value: Any) -> bytes:
    """Emmett's RedisCache format: an exact int as ASCII digits, anything else ``b"!" + pickle``."""
    if type(value) is int:
        return str(value).encode("ascii")
    return b"!" + pickle.dumps(value)


def loads(data: bytes | None) -> Any:
    """Inverse of :func:`dumps`; None stays None (a miss)."""
    if data is None:
        return None
    if data[:1] == b"!":
        return pickle.loads(data[1:])
    return int(data)


# -- measuring -------------------------------------------------------------------------------------------------


@contextmanager
def no_gc() -> Iterator[None]:
    """Collect once, then keep the cyclic collector out of the timed region."""
    gc.collect()
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _block(fn: Callable[[], Any], n: int) -> int:
    clock = time.perf_counter_ns
    t0 = clock()
    for _ in range(n):
        fn()
    return clock() - t0


def quartiles(values: list[float]) -> dict[str, float]:
    """Median, first and third quartile of *values* (at least one)."""
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"median": median, "q1": q1, "q3": q3}


def paired(a: Callable[[], Any], b: Callable[[], Any], sizes: Sizes) -> dict[str, Any]:
    """Time(a) / time(b) over ``sizes.rounds`` rounds of A, B, B, A blocks: median, quartiles and rounds.

    Below 1, *a* is faster. Both run once before the clock starts, so that connections already exist.
    """
    a(), b()
    ratios: list[float] = []
    a_ns: list[float] = []
    with no_gc():
        for _ in range(sizes.rounds):
            ta = _block(a, sizes.block)
            tb = _block(b, sizes.block) + _block(b, sizes.block)
            ta += _block(a, sizes.block)
            ratios.append(ta / tb)
            a_ns.append(ta / (2 * sizes.block))
    q = quartiles(ratios)
    return {**{k: round(v, 4) for k, v in q.items()}, "rounds": sizes.rounds, "block": sizes.block,
            "a_median_us": round(statistics.median(a_ns) / 1e3, 3)}


def latency(fn: Callable[[], Any], n: int) -> dict[str, Any]:
    """Each of *n* calls timed alone: n, p50, p99 and max in milliseconds (nearest rank)."""
    fn()
    clock = time.perf_counter_ns
    samples = []
    with no_gc():
        for _ in range(n):
            t0 = clock()
            fn()
            samples.append(clock() - t0)
    samples.sort()

    def rank(p: float) -> float:
        return round(samples[max(0, math.ceil(p * n) - 1)] / 1e6, 6)

    return {"n": n, "p50_ms": rank(0.50), "p99_ms": rank(0.99), "max_ms": round(samples[-1] / 1e6, 6)}


def parsers() -> dict[str, str]:
    """The reply parser each client library uses by default in this process (compiled one if installed)."""
    import redis.connection
    import valkey.connection

    return {"valkey-py": valkey.connection.DefaultParser.__name__, "redis-py": redis.connection.DefaultParser.__name__}


# -- a PING client in its own process: what any other client of the server sees during a long command -------------


def _probe_main(host: str, port: int, conn: Any, pause: float) -> None:
    client = valkey.Valkey(host=host, port=port, socket_timeout=10)
    try:
        client.ping()
        conn.send("ready")
        worst, n = 0, 0
        clock = time.perf_counter_ns
        while True:
            if conn.poll(pause):
                msg = conn.recv()
                if msg == "stop":
                    break
                if msg == "report":
                    conn.send((worst / 1e6, n))
                worst, n = 0, 0  # "reset" and "report" both start a new window
                continue
            t0 = clock()
            client.ping()
            worst, n = max(worst, clock() - t0), n + 1
    finally:
        client.close()
        conn.close()


class PingProbe:
    """A spawned process that PINGs the server every ``pause`` seconds and reports the slowest reply per window."""

    def __init__(self, host: str, port: int, pause: float = 0.0005) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_probe_main, args=(host, port, child, pause), name="ping-probe", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError("the PING probe did not start")

    def reset(self) -> None:
        """Start a new window."""
        self._conn.send("reset")

    def report(self) -> tuple[float, int]:
        """Worst PING round trip (ms) and PING count since the window started; starts a new window."""
        self._conn.send("report")
        if not self._conn.poll(30):
            raise RuntimeError("the PING probe did not answer")
        worst, n = self._conn.recv()
        return float(worst), int(n)

    def close(self) -> int | None:
        """Stop the process; returns its exit code."""
        try:
            self._conn.send("stop")
        except OSError:
            pass
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(10)
        self._conn.close()
        return self._proc.exitcode


def slowest_command(client: valkey.Valkey) -> dict[str, Any]:
    """The longest command in the server's SLOWLOG (which logs every command here), then SLOWLOG RESET."""
    entries: Any = client.slowlog_get(1_000_000)
    client.slowlog_reset()
    ignore = {b"SLOWLOG", b"CONFIG", b"PING"}
    worst: dict[str, Any] = {"ms": 0.0, "command": None, "logged": len(entries)}
    for entry in entries:
        command = entry.get("command", b"")
        name = (command.split(b" ", 1)[0] if isinstance(command, bytes) else str(command).split(" ", 1)[0].encode())
        if name.upper() in ignore:
            continue
        ms = int(entry["duration"]) / 1000
        if ms > worst["ms"]:
            text = command.decode(errors="replace") if isinstance(command, bytes) else str(command)
            worst = {"ms": ms, "command": shorten(text, 60), "logged": len(entries)}
    return worst
