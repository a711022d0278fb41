"""What the certification suites write and the report reads: one home for the names both sides use.

The suites (``certification/``) register :data:`SUITE_MARKERS` as their pytest markers, parametrize tests over
:data:`HANDLERS` and count :data:`OUTCOMES` in result files of schema :data:`RESULTS_SCHEMA`; the report reads the
same names back. The topology of a run is part of its id (:class:`~emmett_valkey_matrix.run_id.RunId`). Plain
data: importing it costs nothing.
"""

from __future__ import annotations

from .run_id import TOPOLOGIES as TOPOLOGIES
from .run_id import RunId, Topology

RESULTS_SCHEMA = "emmett-valkey-results/1"
DISTRIBUTION = "emmett-valkey"

OURS = "ValkeyCache"
BASELINE = "RedisCache"
HANDLERS = (OURS, BASELINE)

#: suite (a pytest marker) -> what it covers, in the order the report shows them
SUITE_MARKERS: dict[str, str] = {
    "unit": "every handler method and rule",
    "integration": "a real Emmett application, through its test client and served by granian",
    "multiprocess": "processes sharing one cache",
    "expiration": "default, explicit and sub-second durations, touch, expiry as a miss",
    "pattern_clear": "clear of many keys by prefix and pattern, with glob and unusual characters",
    "async_": "the valkey.asyncio paths under concurrency, and event-loop lag",
    "stress": "threads and processes in a bounded mixed workload on a small pool",
    "faults": "restarts, stalls, memory limits, auth, TLS, serializer safety and bad input",
    "cluster": "ValkeyCache on a local cluster of 3 primaries and 3 replicas of the same server build",
    "local_cache": "the local cache: invalidation by any process, staleness, lost connection, evictions, restart",
    "benchmark": "pytest-benchmark groups (run once as checks unless --benchmark-only)",
}
SUITES = tuple(SUITE_MARKERS)

OUTCOMES = ("passed", "failed", "skipped", "xfailed", "xpassed", "error")

#: how a catalogued server runs (result id ``<id>-cluster`` for a cluster): :mod:`emmett_valkey_matrix.run_id` owns it
STANDALONE = Topology.STANDALONE
CLUSTER = Topology.CLUSTER


def split_id(server_id: str) -> tuple[str, str]:
    """Split a result id into (catalogue id, topology), as :meth:`RunId.read` does (kept for the docs' examples).

    ``valkey91-cluster`` -> ``("valkey91", "cluster")``; any other id is standalone: ``valkey91`` -> ``("valkey91",
    "standalone")``. Code reads ids with :class:`~emmett_valkey_matrix.run_id.RunId`.
    """
    run_id = RunId.read(server_id)
    return run_id.base, run_id.topology.value


def join_id(base_id: str, topology: str) -> str:
    """Return the result id of a catalogue id on a topology (the inverse of :func:`split_id`; ``str(RunId)``)."""
    return str(RunId(base_id, Topology.named(topology)))
