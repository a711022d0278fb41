"""How a result file says what ran: one server, or a cluster of its build; and whether that matches its id.

A result id names its topology (``run_id.RunId``: ``valkey91-cluster`` is a cluster of ``valkey91``'s build).
The file's ``server`` block says it too: ``"topology": "standalone" | "cluster"`` (absent: standalone) with the nodes
in a ``"cluster"`` block (``emmett_valkey_matrix.cluster.LocalCluster.provenance``). It is read here, and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..catalogue import Entry, in_line
from ..run_id import Topology
from .model import ClusterInfo, ClusterNodeInfo


def recorded_topology(server: Mapping[str, Any]) -> Topology:
    """Return the topology a ``server`` block records: ``cluster`` or ``standalone`` (older files: standalone)."""
    topology = server.get("topology")
    if topology == Topology.CLUSTER or (topology is None and isinstance(server.get("cluster"), Mapping)):
        return Topology.CLUSTER
    return Topology.STANDALONE


def _block(server: Mapping[str, Any]) -> Mapping[str, Any]:
    block = server.get("cluster")
    return block if isinstance(block, Mapping) else {}


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def _slots(value: object) -> tuple[tuple[int, int], ...]:
    if not isinstance(value, Sequence):
        return ()
    out = []
    for pair in value:
        if isinstance(pair, Sequence) and len(pair) == 2 and all(_int(x) is not None for x in pair):
            out.append((int(pair[0]), int(pair[1])))
    return tuple(out)


def cluster_info(server: Mapping[str, Any]) -> ClusterInfo | None:
    """Return the nodes of a cluster run as the report shows them, or ``None`` for a standalone server."""
    if recorded_topology(server) is not Topology.CLUSTER:
        return None
    block = _block(server)
    nodes = tuple(
        ClusterNodeInfo(
            node_id=_str(n.get("node_id")),
            host=_str(n.get("host")),
            port=_int(n.get("port")),
            role=str(n.get("role") or "unknown"),
            slots=_slots(n.get("slots")),
            replica_of=_str(n.get("replica_of")),
            product=_str(n.get("product")),
            version=_str(n.get("version")),
        )
        for n in block.get("nodes") or ()
        if isinstance(n, Mapping)
    )
    roles = [n.role for n in nodes]
    primaries = _int(block.get("primaries"))
    replicas = _int(block.get("replicas"))
    return ClusterInfo(
        primaries=roles.count("primary") if primaries is None else primaries,
        replicas=roles.count("replica") if replicas is None else replicas,
        nodes=nodes,
    )


def topology_problem(entry: Entry, server_id: str, topology: str, server: Mapping[str, Any]) -> str | None:
    """Why a completed run's ``server`` block does not fit its id's topology and ``entry``'s build, or ``None``.

    A ``<id>-cluster`` file must record a cluster with nodes, each node (where it names them) of the server's
    binary and of the catalogued product and line; a ``<id>`` file must not record a cluster.
    """
    recorded = recorded_topology(server)
    if recorded != topology:
        return f"{server_id} is a {topology} run but the file records a {recorded} server"
    if topology != Topology.CLUSTER:
        return None
    info = cluster_info(server)
    if info is None or not info.nodes:
        return f"{server_id} is a cluster run but the file records no cluster nodes"
    binary = server.get("binary_sha256")
    for raw in _block(server).get("nodes") or ():
        theirs = raw.get("binary_sha256") if isinstance(raw, Mapping) else None
        if binary and theirs and theirs != binary:
            return (
                f"{server_id} is a cluster of the binary recorded for the server (sha256 {binary}) but node "
                f"{raw.get('node_id') or raw.get('port')} ran another (sha256 {theirs})"
            )
    for node in info.nodes:
        product = node.product or entry.product
        version = node.version or str(server.get("version", ""))
        if product != entry.product or not in_line(version, entry.line):
            return (
                f"{server_id} is a cluster of {entry.display}.x but node {node.node_id or node.port} "
                f"records {product} {version}"
            )
    return None
