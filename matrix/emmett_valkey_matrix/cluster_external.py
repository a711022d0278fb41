"""A cluster someone else runs (``CERTIFY_<ID>_CLUSTER_URL``): found from one seed node, every node identified.

The seed must say ``cluster_enabled:1`` in INFO, else the run is refused (:class:`IntegrityError`): a single server
certified as a cluster would be a false claim. ``CLUSTER NODES`` on the seed lists the nodes; each one is asked
``INFO`` like a single server and checked against the id (product and line), so a cluster of mixed or wrong
versions is refused too. Nothing is started or stopped: :meth:`ExternalCluster.stop` does nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import valkey

from .cluster_nodes import PRIMARY, REPLICA, node_record, parse_nodes
from .executor import ExternalServer, StopsOnExit, close, query
from .identify import IntegrityError, check, from_info
from .run_id import Topology

PROBE_TIMEOUT_S = 5.0


@dataclass
class ExternalCluster(StopsOnExit):
    """A running cluster we connect to and check, never control; ``startup_nodes`` are its live nodes."""

    seed: ExternalServer
    startup_nodes: list[tuple[str, int]]
    provenance: dict[str, Any] = field(default_factory=dict)
    external = True
    pid = None

    @property
    def host(self) -> str:
        """Host of the seed node."""
        return self.seed.host

    @property
    def port(self) -> int:
        """Port of the seed node."""
        return self.seed.port

    @property
    def url(self) -> str:
        """The URL the user gave (the seed node)."""
        return self.seed.url

    def stop(self) -> None:
        """Nothing to stop: the cluster is not ours."""


def connect_cluster(server: ExternalServer, entry: Any, source: str, base: dict[str, Any]) -> ExternalCluster:
    """Identify the cluster whose seed is ``server``; every node must be ``entry``'s product and line.

    ``base`` is the seed's single-server provenance; the result's provenance adds ``"topology": "cluster"`` and
    the nodes. Raises :class:`IntegrityError` when the seed is not in cluster mode or a node is not the id's server.
    """
    conn = _client(server, server.host, server.port)
    try:
        enabled = conn.info("cluster").get("cluster_enabled")  # type: ignore[union-attr]
        if str(enabled) != "1":
            raise IntegrityError(f"{source}: {server.host}:{server.port} is not in cluster mode "
                                 f"(INFO cluster says cluster_enabled:{enabled}); give a cluster node, or certify "
                                 f"the single server with CERTIFY_{entry.id.upper()}_URL")
        reply = conn.execute_command("CLUSTER", "NODES")  # type: ignore[no-untyped-call]
        text = reply.decode() if isinstance(reply, bytes) else str(reply)
    finally:
        close(conn)
    addresses = _addresses(text, server.host)
    views = parse_nodes(text)
    records, live = [], []
    for node_id, view in views.items():
        host, port = addresses[node_id]
        if "fail" in view.flags or view.role not in (PRIMARY, REPLICA):
            records.append(node_record(node_id, host, port, "down", (), None, {}))
            continue
        node = _client(server, host, port)
        try:
            info, memory, _ = query(node)
        finally:
            close(node)
        found = from_info(info, memory)
        check(entry, found, f"{source} (node {host}:{port})")
        identity = {"product": found.product, "version": found.version, "build_id": found.build_id,
                    "git_sha": found.git_sha}
        records.append(node_record(node_id, host, port, view.role, view.slots, view.primary_id, identity))
        live.append((host, port))
    prov = dict(base)
    prov["topology"] = Topology.CLUSTER.value
    prov["cluster"] = {"primaries": sum(r["role"] == PRIMARY for r in records),
                       "replicas": sum(r["role"] == REPLICA for r in records), "nodes": records}
    live.sort(key=lambda hp: hp != (server.host, server.port))  # the seed first
    return ExternalCluster(server, live, prov)


def _client(server: ExternalServer, host: str, port: int) -> valkey.Valkey:
    return valkey.Valkey(host=host, port=port, password=server.password, username=server.username, ssl=server.tls,
                         socket_timeout=PROBE_TIMEOUT_S, socket_connect_timeout=PROBE_TIMEOUT_S)


def _addresses(text: str, seed_host: str) -> dict[str, tuple[str, int]]:
    """Map node id -> (host, port) from ``CLUSTER NODES`` (an empty host is the seed's)."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8:
            continue
        address = parts[1].split("@")[0].split(",")[0]
        host, _, port = address.rpartition(":")
        out[parts[0]] = (host or seed_host, int(port) if port.isdigit() else 0)
    return out
