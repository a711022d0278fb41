"""Multiprocess suite: processes sharing one cache on the server, each with its own connections.

Children are spawned and build their own handler from plain arguments; results come back on a queue, every child is
joined with a timeout and must exit with code 0 (see ``support_multiprocess``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue as queue_mod
import warnings
from typing import Any

import pytest
import valkey
from emmett_valkey import ValkeyCache

from certification.session import ServerInfo
from certification.support import scan_delete, skip_baseline_on_cluster
from certification.support_multiprocess import (
    N_PROCESSES,
    WIRE_VALUES,
    connection_identity,
    count,
    exchange,
    forked_child,
    run_children,
    share_values,
)

pytestmark = pytest.mark.multiprocess

ROUNDS = 250


def test_value_set_in_one_process_is_read_by_the_others(handler: Any, server: ServerInfo, key_prefix: str) -> None:
    """Each of 4 spawned processes writes an entry; every process reads all 4, as written, through its own handler."""
    kind = type(handler).__name__
    barrier = mp.get_context("spawn").Barrier(N_PROCESSES)
    out = run_children(share_values, [(kind, server.handler_args(), key_prefix, i, N_PROCESSES, barrier)
                                      for i in range(N_PROCESSES)])
    pids = [o["pid"] for o in out]
    assert len(set(pids)) == N_PROCESSES and os.getpid() not in pids
    expected = {j: {"index": j, "pid": pids[j]} for j in range(N_PROCESSES)}
    for o in out:
        assert o["read"] == expected
    assert {j: handler.get(f"from-{j}") for j in range(N_PROCESSES)} == expected


def test_incr_is_atomic_across_processes(ours: ValkeyCache, server: ServerInfo, key_prefix: str,
                                         raw: valkey.Valkey) -> None:
    """4 processes x 250 incr() on one counter end at exactly 1000, each value returned exactly once, with a TTL."""
    barrier = mp.get_context("spawn").Barrier(N_PROCESSES)
    out = run_children(count, [(server.handler_args(), key_prefix, ROUNDS, barrier)] * N_PROCESSES)
    total = N_PROCESSES * ROUNDS
    assert sorted(v for values in out for v in values) == list(range(1, total + 1))
    assert all(values == sorted(values) for values in out)
    assert ours.get("counter") == total and raw.get(key_prefix + "counter") == str(total).encode()
    assert 0 < raw.pttl(key_prefix + "counter") <= ours.default_expire * 1000


def test_handlers_in_different_processes_read_each_other(server: ServerInfo, key_prefix: str,
                                                         raw: valkey.Valkey) -> None:
    """Entries RedisCache writes in one process read back equal through ValkeyCache in another, and the reverse."""
    skip_baseline_on_cluster(server)
    barrier = mp.get_context("spawn").Barrier(2)
    try:
        by_valkey, by_redis = run_children(exchange, [
            ("ValkeyCache", "RedisCache", server.handler_args(), key_prefix, barrier),
            ("RedisCache", "ValkeyCache", server.handler_args(), key_prefix, barrier),
        ])
    finally:
        scan_delete(raw, key_prefix)
    for got in (by_valkey, by_redis):
        assert got == WIRE_VALUES
        assert [type(v) for v in got] == [type(v) for v in WIRE_VALUES]


def test_forked_process_has_its_own_connection(handler: Any) -> None:
    """A child forked after the parent used the handler gets a new connection; parent and child both keep working."""
    handler.set("parent", "p", 60)
    assert handler.get("parent") == "p"
    parent_identity = connection_identity(handler)
    ctx = mp.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=forked_child, args=(handler, results, ROUNDS), name="cert-mp-fork")
    with warnings.catch_warnings():  # Python >= 3.12 warns on fork() when the test runner has threads
        warnings.filterwarnings("ignore", message=r".*fork\(\) may lead to deadlocks", category=DeprecationWarning)
        child.start()
    try:
        # the parent keeps using its connection while the child uses its own: shared sockets would mix the replies
        parent_ok = 0
        for i in range(ROUNDS):
            handler.set(f"parent-{i}", ("parent", i), 60)
            parent_ok += handler.get(f"parent-{i}") == ("parent", i)
        try:
            reply = results.get(timeout=20)
        except queue_mod.Empty:
            reply = ("error", "no result from the forked child")
        child.join(20)
    finally:
        if child.is_alive():
            child.kill()
            child.join(5)
        results.close()
        results.join_thread()
    assert reply[0] == "ok", reply
    assert child.exitcode == 0
    child_pid = child.pid
    child.close()
    _, child_identity, child_ok, child_identity_after = reply
    assert child_identity[0] != parent_identity[0], "the child used the parent's connection (same CLIENT ID)"
    assert child_identity[1] != parent_identity[1], "the child's socket has the parent's local address"
    assert child_identity_after == child_identity
    assert child_ok == parent_ok == ROUNDS
    assert connection_identity(handler) == parent_identity, "the parent lost its connection when the child forked"
    assert handler.get("child-pid") == child_pid != os.getpid()
    assert handler.get("parent") == "p"
