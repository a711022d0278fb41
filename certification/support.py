"""What the suites share besides fixtures: building and closing the two handlers, and a test's own key cleanup."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import valkey

from certification.session import ServerInfo

#: why the cluster suites (their own clusters, killed, uncovered and moved) run in the cluster topology's session
CLUSTER_RUNS = ("the cluster suites start clusters of the id's build themselves: they run with tox -e <id>-cluster "
                "(pytest --server <id>-cluster)")

RUN_ID = os.environ.get("EMMETT_VALKEY_RUN_ID") or uuid.uuid4().hex[:8]

#: the one reason a baseline test does not run on the cluster topology (test_cluster_baseline.py shows why)
BASELINE_ON_CLUSTER = "RedisCache has no cluster client: see the cluster deviations (test_cluster_baseline.py)"


def skip_baseline_on_cluster(server: ServerInfo) -> None:
    """Skip the calling test on the cluster topology: it needs Emmett's RedisCache, which has no cluster client."""
    import pytest

    if server.cluster:
        pytest.skip(BASELINE_ON_CLUSTER)


def build_handler(kind: str, host: str, port: int, prefix: str, **kwargs: Any) -> Any:
    """Build one of the two handlers (``ValkeyCache`` or ``RedisCache``) from plain arguments (also in a child).

    ``kwargs`` carry :meth:`ServerInfo.handler_kwargs` (``cluster=True, startup_nodes=[...]`` on a cluster) and the
    test's own options. RedisCache has no cluster client: asking for one on a cluster is a ``ValueError``.
    """
    if kind == "ValkeyCache":
        from emmett_valkey import ValkeyCache

        return ValkeyCache(host=host, port=port, prefix=prefix, **kwargs)
    from emmett_core.cache.handlers import RedisCache

    if kwargs.pop("cluster", False):
        raise ValueError(f"{BASELINE_ON_CLUSTER}; asked for one on {host}:{port}")
    kwargs.pop("startup_nodes", None)
    return RedisCache(host=host, port=port, prefix=prefix, **kwargs)


def make_handler(kind: str, server: ServerInfo, prefix: str, **kwargs: Any) -> Any:
    """Build one of the two handlers on *server* (on a cluster: ours as a cluster handler; the baseline is skipped)."""
    topology = server.handler_kwargs() if isinstance(server, ServerInfo) else {}  # else a dedicated server, a proxy
    if kind != "ValkeyCache" and isinstance(server, ServerInfo):
        skip_baseline_on_cluster(server)
    return build_handler(kind, server.host, server.port, prefix, **{**topology, **kwargs})


def raw_client(server: ServerInfo, **kwargs: Any) -> Any:
    """A plain valkey-py client on *server*: ``valkey.Valkey``, or ``valkey.cluster.ValkeyCluster`` on a cluster."""
    if server.cluster:
        return cluster_client(server.startup_nodes, **kwargs)
    return valkey.Valkey(**server.connection_kwargs(), **kwargs)


def cluster_client(startup_nodes: Iterable[tuple[str, int]], **kwargs: Any) -> Any:
    """valkey-py's ``ValkeyCluster`` seeded with every node given (``(host, port)`` pairs)."""
    from valkey.cluster import ClusterNode, ValkeyCluster

    return ValkeyCluster(startup_nodes=[ClusterNode(h, p) for h, p in startup_nodes], **kwargs)


def open_cluster_client(cluster: Any, **kwargs: Any) -> Iterator[Any]:
    """A fixture body: a ``ValkeyCluster`` on a module's own local cluster, closed after the test."""
    client = cluster_client(cluster.startup_nodes, **kwargs)
    try:
        yield client
    finally:
        client.close()


def on_local_cluster(cluster: Any, prefix: str) -> Iterator[Any]:
    """A fixture body: ``ValkeyCache`` on a module's own local cluster, on the test's prefix; its keys removed after."""
    from emmett_valkey import ValkeyCache

    host, port = cluster.startup_nodes[0]
    handler = ValkeyCache(host=host, port=port, cluster=True, prefix=prefix)
    try:
        yield handler
    finally:
        handler.clear()
        handler.close()


def close_handler(handler: Any) -> None:
    """Close a handler's synchronous connections, whichever kind it is."""
    if hasattr(handler, "close"):
        handler.close()
    else:
        handler._cache.close()


def scan_delete(client: Any, prefix: str) -> int:
    """Delete every key under *prefix* with a full SCAN cursor loop (the test's own teardown).

    On a cluster client, SCAN runs on every primary and each key is unlinked on its own slot's node.
    """
    from emmett_valkey.keys import glob_escape

    match = glob_escape(prefix) + "*"
    deleted = 0
    if hasattr(client, "get_primaries"):  # valkey.cluster.ValkeyCluster
        for node in client.get_primaries():
            for batch in _batched(client.scan_iter(match=match, count=1000, target_nodes=node), 1000):
                deleted += sum(client.unlink(key) for key in batch)
        return deleted
    for batch in _batched(client.scan_iter(match=match, count=1000), 1000):
        deleted += client.unlink(*batch)
    return deleted


def _batched(it: Iterator[bytes], n: int) -> Iterator[list[bytes]]:
    batch: list[bytes] = []
    for item in it:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def start_local_cluster(server: ServerInfo, workdir: Path, *, replicas: int = 1,
                        node_timeout_ms: int | None = None) -> Any:
    """A local cluster of 3 primaries (and ``replicas`` each) of the session server's own build, for one module.

    The cluster suites start their own (they kill, stall, uncover and move nodes); on an external server the test
    is skipped with the reason. ``node_timeout_ms``: a long timeout where no failover is wanted, so a stalled busy
    machine is not taken for a failed node.
    """
    import pytest
    from emmett_valkey_matrix import ServerOptions, resolve
    from emmett_valkey_matrix.cluster import start_cluster

    resolved = resolve(server.base_id)
    if resolved.external:
        pytest.skip(f"{server.id} is a server the user runs ({resolved.describe()}): no cluster of it can be started")
    options = ServerOptions() if node_timeout_ms is None else ServerOptions(cluster_node_timeout_ms=node_timeout_ms)
    return start_cluster(resolved, workdir, primaries=3, replicas_per_primary=replicas, options=options)
