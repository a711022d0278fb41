"""What the handler is expected to achieve, as numbers: one home for every limit.

``bench`` judges the benchmark figures against these; the report's latency table and charts judge p99 samples of
the certification run against :data:`LATENCY_P99`. Each limit says why it is what it is.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

_COMPARE: dict[str, Callable[[float, float], bool]] = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}

#: how a figure is read: a time ratio (time of ours / time of the other side, below 1 is faster), a speed-up
#: (times faster) or milliseconds
RATIO, SPEEDUP, MS = "ratio", "speedup", "ms"
UNITS = (RATIO, SPEEDUP, MS)


@dataclass(frozen=True)
class Target:
    """A bound a figure must meet: ``value <op> limit`` (or ``|value - 1| <= limit`` for ``"±"``)."""

    op: str  # "<=", "<", ">=" or "±"
    limit: float

    def met(self, value: float) -> bool:
        """Whether *value* meets the bound."""
        if self.op == "±":
            return abs(value - 1.0) <= self.limit
        return _COMPARE[self.op](value, self.limit)

    def __str__(self) -> str:
        return f"1 ± {self.limit:g}" if self.op == "±" else f"{self.op} {self.limit:g}"


# Paired medians of the benchmark suite (time ratios unless a speed-up), measured on loopback.
#: the handler adds at most 5% to valkey-py doing the same work: its own code is a thin layer over the client
OURS_VS_RAW = Target("<=", 1.05)
#: and is at least a quarter faster than Emmett's RedisCache, the handler it replaces
OURS_VS_BASELINE = Target("<=", 0.75)
#: one get_many of 100 keys (one MGET round trip) is at least 30 times faster than 100 single gets
GET_MANY_SPEEDUP = Target(">=", 30.0)
#: one set_many of 100 keys (one pipeline) is at least 6 times faster than 100 single sets (each SET still runs)
SET_MANY_SPEEDUP = Target(">=", 6.0)
#: clearing a pattern never stalls other clients: a concurrent PING is answered within 5 ms throughout
CLEAR_WORST_PING_MS = Target("<", 5.0)
#: no single server command of a pattern clear (SCAN, UNLINK batch) runs for 4 ms or longer
CLEAR_SLOWEST_COMMAND_MS = Target("<", 4.0)
#: clearing in small non-blocking batches takes at most twice the wall time of one blocking KEYS + DEL
CLEAR_WALL_VS_KEYS_DEL = Target("<=", 2.0)
#: 50 tasks awaiting aget of one small pickled dict: at least GLIDE's async client's ops/s (its Rust core pipelines
#: them on one connection; ours does the same in Python, see handler/emmett_valkey/stream.py) ...
ASYNC_VS_GLIDE = Target("<=", 1.0)
#: ... and at least twice the ops/s of valkey.asyncio on a pool (a connection per concurrent task)
ASYNC_VS_ASYNCIO_POOL = Target("<=", 0.5)
#: one task awaiting aget in sequence: at most 10% slower than valkey.asyncio doing the same GET and unpickling
ASYNC_ONE_TASK_VS_ASYNCIO = Target("<=", 1.1)
#: a sync get of a small pickled dict costs at most 10% more than a bare socket sending the GET and unpickling
SYNC_VS_SOCKET = Target("<=", 1.10)
#: concurrent asyncio tasks overlap their round trips: at least 1.3 times faster than the same calls one by one
ASYNC_CONCURRENCY_SPEEDUP = Target(">=", 1.3)
# On a cluster (certification/test_cluster_benchmarks.py), against valkey-py's ValkeyCluster doing the same work.
#: the handler adds at most 20% to the raw cluster client's GET or SET. Measured 1.14 (get) and 1.18 (set) on
#: valkey91, twice, on a loaded 2-core machine: the handler's own calls per operation (about 25 Python calls) are
#: the same as on one server, but there a connection kept per thread saves the pool checkout and brings it under
#: 1, which a cluster client (a pool per node) does not allow
CLUSTER_OURS_VS_RAW = Target("<=", 1.20)
#: get_many of 100 keys over every primary (a MGET per slot, pipelined per node) is at least 5 times faster than
#: 100 single gets: it still sends 100 MGETs, but in 3 pipelines rather than 100 round trips (measured: 11 times,
#: valkey91 on a loaded 2-core machine); not 30 as on one server, where it is one MGET
CLUSTER_GET_MANY_SPEEDUP = Target(">=", 5.0)
#: a hit of the local cache skips the round trip: at least 20 times faster than a server get through the same handler
LOCAL_HIT_SPEEDUP = Target(">=", 20.0)
#: a hit of the local cache, with its look at the invalidation connection, costs no more than Emmett's RamCache.get of
#: the same value (a lock, a dict and a heap): freshness is not paid for on the hot path
LOCAL_VS_RAMCACHE = Target("<=", 1.0)
#: get_many of 100 keys all held locally is at least 20 times faster than a server get_many (one MGET) of them
LOCAL_GET_MANY_SPEEDUP = Target(">=", 20.0)
#: a hot key read from the local cache costs at most a twentieth of RedisCache's get of it
LOCAL_VS_BASELINE = Target("<=", 0.05)
#: the local cache's miss path (GET and PTTL in one round trip, the entry stored) adds at most 5% to a plain miss
LOCAL_MISS_VS_PLAIN = Target("<=", 1.05)
#: two identical clients measured against each other land within 2% of 1: the noise floor of the pairing
CONTROL = Target("±", 0.02)

# Latency of single calls, per operation.
#: a cache on loopback answers GET and SET within 1 ms at p99
P99_MS = Target("<", 1.0)
#: clearing a prefix of 1,000 keys finishes within 10 ms at p99 (it walks the keyspace in SCAN batches)
PATTERN_CLEAR_P99_MS = Target("<", 10.0)
#: operation -> the bound its p99 (ms) must meet; operations not named have no expectation
LATENCY_P99: dict[str, Target] = {"get": P99_MS, "set": P99_MS, "pattern_clear": PATTERN_CLEAR_P99_MS}
